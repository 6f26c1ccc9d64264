//! One log line: `2026-11-26 20:46:00.123  INFO message key=value …`, every part bounded,
//! and the escaping applied to every finished line.

use std::fmt::{self, Write as _};

use chrono::{DateTime, Local};
use tracing::field::{Field, Visit};
use tracing::{Event, Level};

/// Most characters kept of one field's value.
pub const MAX_FIELD_CHARS: usize = 256;
/// Most characters kept of a line's message.
pub const MAX_MESSAGE_CHARS: usize = 1024;
/// Most fields written for one line; the rest are counted.
pub const MAX_FIELDS: usize = 32;
/// Most bytes of one line (before escaping).
pub const MAX_LINE_BYTES: usize = 4096;
/// Fields whose end matters more than their start (the owning domain of an origin or a
/// host name is at its end): cut keeping the end.
const KEEP_END_FIELDS: &[&str] = &["origin", "host"];
/// Most characters formatted of a keep-end field before it is cut (a value is never
/// larger than a request head or a message, but a `Debug` value could be).
const MAX_KEEP_END_SCAN: usize = 64 * 1024;

/// `s` cut to its first `max` characters followed by `…`, or whole when it is not longer.
pub fn cut_keep_start(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((at, _)) => {
            let mut t = String::with_capacity(at + 3);
            t.push_str(&s[..at]);
            t.push('…');
            t
        }
    }
}

/// `s` cut to its last `max` characters behind a leading `…`, or whole when it is not
/// longer. For origins and host names, whose owner is at the end:
/// `https://crm.company.com.aaaa….evil.example` is cut to `…aaaa.evil.example`, not to
/// the misleading `https://crm.company.com.aaaa…`.
pub fn cut_keep_end(s: &str, max: usize) -> String {
    let count = s.chars().count();
    if count <= max {
        return s.to_owned();
    }
    let at = s
        .char_indices()
        .nth(count - max)
        .map_or(s.len(), |(at, _)| at);
    let mut t = String::with_capacity(s.len() - at + 3);
    t.push('…');
    t.push_str(&s[at..]);
    t
}

/// Whether `c` must not reach a log file or a terminal as it is: control characters
/// (C0, DEL, C1), the line and paragraph separators, and the bidirectional controls
/// that make text display in another order than it is stored.
pub fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `line` with every character that [`must_escape`] written as an escape: `\n`, `\r`,
/// `\t`, or `\u{…}` with its code point in hex. Applied once to every finished line,
/// just before it is written, so that no field, message or internal line can break a
/// line, forge one, move the terminal's cursor or reorder what a reader sees.
pub fn escape_line(line: &str) -> String {
    if !line.chars().any(must_escape) {
        return line.to_owned();
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        if !must_escape(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    out
}

/// A `fmt::Write` that keeps at most `left` characters and notes whether more came.
struct Bounded<'a> {
    out: &'a mut String,
    left: usize,
    cut: bool,
}

impl fmt::Write for Bounded<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.cut {
            return Ok(());
        }
        for c in s.chars() {
            if self.left == 0 {
                self.cut = true;
                // Formatting of the rest is skipped: a huge value costs no more.
                return Err(fmt::Error);
            }
            self.out.push(c);
            self.left -= 1;
        }
        Ok(())
    }
}

/// Formats `value` into a string of at most `max` characters (plus `…` when cut).
fn bounded(value: &dyn fmt::Debug, max: usize) -> String {
    let mut s = String::new();
    let mut w = Bounded {
        out: &mut s,
        left: max,
        cut: false,
    };
    let _ = write!(w, "{value:?}");
    if w.cut {
        s.push('…');
    }
    s
}

/// Whether a value must be quoted to be read back unambiguously.
fn needs_quotes(v: &str) -> bool {
    v.is_empty()
        || v.chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c.is_whitespace())
}

/// Appends ` key=value`, quoting the value when it holds spaces, quotes or `=` (so that
/// a value cannot pass for another field).
fn push_field(line: &mut String, name: &str, value: &str) {
    line.push(' ');
    line.push_str(name);
    line.push('=');
    if needs_quotes(value) {
        line.push('"');
        for c in value.chars() {
            if c == '"' || c == '\\' {
                line.push('\\');
            }
            line.push(c);
        }
        line.push('"');
    } else {
        line.push_str(value);
    }
}

/// The start of a line: time and level.
fn head(now: DateTime<Local>, level: Level) -> String {
    let mut line = String::with_capacity(256);
    let _ = write!(
        line,
        "{} {:>5} ",
        now.format("%Y-%m-%d %H:%M:%S%.3f"),
        level
    );
    line
}

/// Cuts a finished line to [`MAX_LINE_BYTES`] on a character boundary.
fn cap_line(mut line: String) -> String {
    if line.len() > MAX_LINE_BYTES {
        let mut at = MAX_LINE_BYTES;
        while !line.is_char_boundary(at) {
            at -= 1;
        }
        line.truncate(at);
        line.push('…');
    }
    line
}

/// A line of the logger's own: `message` and `fields` (names are the caller's).
pub fn internal_line(level: Level, message: &str, fields: &[(&str, &str)]) -> String {
    let mut line = head(Local::now(), level);
    line.push_str(&cut_keep_start(message, MAX_MESSAGE_CHARS));
    for (name, value) in fields.iter().take(MAX_FIELDS) {
        let value = if KEEP_END_FIELDS.contains(name) {
            cut_keep_end(value, MAX_FIELD_CHARS)
        } else {
            cut_keep_start(value, MAX_FIELD_CHARS)
        };
        push_field(&mut line, name, &value);
    }
    cap_line(line)
}

/// Collects an event's message and fields, each bounded.
struct Fields {
    message: String,
    fields: String,
    count: usize,
    skipped: usize,
}

impl Fields {
    fn add(&mut self, name: &str, value: &str) {
        if self.count >= MAX_FIELDS {
            self.skipped += 1;
            return;
        }
        self.count += 1;
        push_field(&mut self.fields, name, value);
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = cut_keep_start(value, MAX_MESSAGE_CHARS);
        } else if KEEP_END_FIELDS.contains(&field.name()) {
            self.add(field.name(), &cut_keep_end(value, MAX_FIELD_CHARS));
        } else {
            self.add(field.name(), &cut_keep_start(value, MAX_FIELD_CHARS));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.add(field.name(), &value.to_string());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field.name(), &value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field.name(), if value { "true" } else { "false" });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if name == "message" {
            self.message = bounded(value, MAX_MESSAGE_CHARS);
        } else if KEEP_END_FIELDS.contains(&name) {
            let whole = bounded(value, MAX_KEEP_END_SCAN);
            self.add(name, &cut_keep_end(&whole, MAX_FIELD_CHARS));
        } else {
            self.add(name, &bounded(value, MAX_FIELD_CHARS));
        }
    }
}

/// The line for an event (without its newline, before escaping).
pub fn event_line(event: &Event<'_>) -> String {
    let mut f = Fields {
        message: String::new(),
        fields: String::new(),
        count: 0,
        skipped: 0,
    };
    event.record(&mut f);
    let mut line = head(Local::now(), *event.metadata().level());
    line.push_str(&f.message);
    line.push_str(&f.fields);
    if f.skipped > 0 {
        push_field(&mut line, "more_fields", &f.skipped.to_string());
    }
    cap_line(line)
}

/// The message of an event, bounded (for the summary of suppressed lines).
pub fn event_message(event: &Event<'_>) -> String {
    struct Message(String);
    impl Visit for Message {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "message" {
                self.0 = cut_keep_start(value, 120);
            }
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                self.0 = bounded(value, 120);
            }
        }
    }
    let mut m = Message(String::new());
    event.record(&mut m);
    m.0
}

/// The connection number of an event: its `conn` field, if any.
pub fn event_conn(event: &Event<'_>) -> Option<u64> {
    struct Conn(Option<u64>);
    impl Visit for Conn {
        fn record_u64(&mut self, field: &Field, value: u64) {
            if field.name() == "conn" {
                self.0 = Some(value);
            }
        }
        fn record_i64(&mut self, field: &Field, value: i64) {
            if field.name() == "conn" {
                self.0 = u64::try_from(value).ok();
            }
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "conn" {
                self.0 = value.trim().parse().ok();
            }
        }
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "conn" {
                self.0 = bounded(value, 24).trim().parse().ok();
            }
        }
    }
    if !event.metadata().fields().iter().any(|f| f.name() == "conn") {
        return None;
    }
    let mut c = Conn(None);
    event.record(&mut c);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_keeps_the_start_or_the_end() {
        assert_eq!(cut_keep_start("abcdef", 3), "abc…");
        assert_eq!(cut_keep_start("abc", 3), "abc");
        assert_eq!(cut_keep_start("", 0), "");
        assert_eq!(cut_keep_start("ääää", 2), "ää…");
        assert_eq!(cut_keep_end("abcdef", 3), "…def");
        assert_eq!(cut_keep_end("abc", 3), "abc");
        assert_eq!(cut_keep_end("äöüß", 2), "…üß");
        assert_eq!(cut_keep_end("abc", 0), "…");
        let origin = format!("https://crm.company.com.{}.evil.example", "a".repeat(500));
        let cut = cut_keep_end(&origin, 64);
        assert!(cut.ends_with(".evil.example"), "{cut}");
        assert!(cut.starts_with('…'));
        assert_eq!(cut.chars().count(), 65);
    }

    #[test]
    fn every_control_and_bidi_character_is_escaped() {
        let hostile = "a\nb\rc\td\u{1b}[31me\u{7f}f\u{85}g\u{2028}h\u{2029}i\u{202e}j\u{2066}k\u{2069}l\u{200f}m\u{61c}n\0";
        let e = escape_line(hostile);
        assert_eq!(
            e,
            "a\\nb\\rc\\td\\u{1b}[31me\\u{7f}f\\u{85}g\\u{2028}h\\u{2029}i\\u{202e}j\\u{2066}k\\u{2069}l\\u{200f}m\\u{61c}n\\u{0}"
        );
        assert!(!e.chars().any(must_escape));
        // Everything else is left alone.
        assert_eq!(escape_line("ä €😀 \\ \"x\""), "ä €😀 \\ \"x\"");
    }

    #[test]
    fn values_that_could_pass_for_fields_are_quoted() {
        let mut line = String::new();
        push_field(&mut line, "origin", "https://a.example result=ok");
        assert_eq!(line, " origin=\"https://a.example result=ok\"");
        let mut line = String::new();
        push_field(&mut line, "x", "say \"hi\" \\");
        assert_eq!(line, " x=\"say \\\"hi\\\" \\\\\"");
        let mut line = String::new();
        push_field(&mut line, "x", "");
        assert_eq!(line, " x=\"\"");
        let mut line = String::new();
        push_field(&mut line, "path", "C:\\Users\\me");
        assert_eq!(line, " path=C:\\Users\\me");
    }

    #[test]
    fn internal_lines_are_bounded() {
        let huge = "x".repeat(100_000);
        let line = internal_line(Level::WARN, &huge, &[("a", &huge), ("origin", &huge)]);
        assert!(line.len() <= MAX_LINE_BYTES + 3, "{}", line.len());
        assert!(line.contains(" WARN xxx"));
    }

    #[test]
    fn a_huge_debug_value_is_cut_while_formatting() {
        let s = bounded(&"y".repeat(10_000), 10);
        assert_eq!(s.chars().count(), 11);
        assert!(s.ends_with('…'));
    }
}
