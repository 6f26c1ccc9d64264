//! Queue calls: which INVITEs a PBX's service queue sent, and the `QueueCallComing`
//! fields taken from them, as the `[sip.queue]` table says.
//!
//! Each field names a *source* in the INVITE:
//!
//! | source | the value |
//! |---|---|
//! | `header:NAME` | the first `NAME` header's value |
//! | `param:NAME:PARAM` | the parameter `PARAM` of the first `NAME` header (after its URI) |
//! | `uri-user:NAME` | the user part of the first URI in the first `NAME` header (`Diversion`, `History-Info`, `To`, …) |
//! | `display-before:SEP` | the From display name's part before the first `SEP` (`"Sales: Ann"` with `": "` gives `Sales`) |
//! | `call-id` | the INVITE's Call-ID |
//!
//! A call is a queue call when the `marker` source gives a value. Every value is a
//! stranger's text: control and bidirectional-formatting characters are dropped and it is
//! cut to [`MAX_FIELD`] characters before it goes anywhere.

use rsipstack::sip;
use serde::{Deserialize, Serialize};

use crate::settings::SettingError;

/// The most characters a queue field keeps.
pub const MAX_FIELD: usize = 128;

/// The `[sip.queue]` table as written; unset values are `None`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct QueueArgs {
    /// The source whose value marks a queue call (required).
    pub marker: Option<String>,
    /// Where `queueCallId` comes from. [default: `call-id`]
    pub queue_call_id: Option<String>,
    /// Where `queueNumber` comes from. [default: empty]
    pub queue_number: Option<String>,
    /// Where `queueId` comes from. [default: empty]
    pub queue_id: Option<String>,
    /// Where `queueName` comes from. [default: the marker's value]
    pub queue_name: Option<String>,
}

/// Where one value comes from in an INVITE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A header's value.
    Header(String),
    /// A parameter of a header.
    Param(String, String),
    /// The user part of a header's URI.
    UriUser(String),
    /// The From display name before a separator.
    DisplayBefore(String),
    /// The Call-ID.
    CallId,
    /// Nothing: the field is empty.
    Empty,
}

/// The checked `[sip.queue]` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRule {
    /// Marks a queue call.
    pub marker: Source,
    /// `queueCallId`.
    pub queue_call_id: Source,
    /// `queueNumber`.
    pub queue_number: Source,
    /// `queueId`.
    pub queue_id: Source,
    /// `queueName`.
    pub queue_name: Source,
}

/// A queue call's fields, cleaned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueFields {
    /// The queue platform's id of the call.
    pub queue_call_id: String,
    /// The queue's number.
    pub queue_number: String,
    /// The queue's id.
    pub queue_id: String,
    /// The queue's name.
    pub queue_name: String,
}

/// A header name: an RFC 3261 token, at most 64 bytes.
fn header_name(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

impl Source {
    /// Parses a source; `key` names it in errors.
    pub fn parse(key: &str, t: &str) -> Result<Source, SettingError> {
        let bad =
            |why: &str| SettingError::new(key, format!("{:?} {why}", crate::settings::shown(t)));
        let t = t.trim();
        if t.eq_ignore_ascii_case("call-id") {
            return Ok(Source::CallId);
        }
        let (kind, rest) = t.split_once(':').ok_or_else(|| {
            bad("is not a source: header:NAME, param:NAME:PARAM, uri-user:NAME, display-before:SEP or call-id")
        })?;
        match kind.to_ascii_lowercase().as_str() {
            "header" if header_name(rest) => Ok(Source::Header(rest.to_owned())),
            "uri-user" if header_name(rest) => Ok(Source::UriUser(rest.to_owned())),
            "param" => match rest.split_once(':') {
                Some((h, p)) if header_name(h) && header_name(p) => {
                    Ok(Source::Param(h.to_owned(), p.to_owned()))
                }
                _ => Err(bad("is not param:NAME:PARAM")),
            },
            "display-before"
                if !rest.is_empty()
                    && rest.chars().count() <= 16
                    && !rest.chars().any(char::is_control) =>
            {
                Ok(Source::DisplayBefore(rest.to_owned()))
            }
            "header" | "uri-user" => {
                Err(bad("does not name a header (a token of at most 64 bytes)"))
            }
            "display-before" => Err(bad("needs a separator of 1 to 16 characters")),
            _ => Err(bad(
                "is not a source: header:NAME, param:NAME:PARAM, uri-user:NAME, display-before:SEP or call-id",
            )),
        }
    }

    /// The value in `request`, cleaned; empty when it has none.
    pub fn value(&self, request: &sip::Request) -> String {
        let raw = match self {
            Source::Header(name) => first_header(request, name).map(str::to_owned),
            Source::Param(name, param) => {
                first_header(request, name).and_then(|v| header_param(v, param))
            }
            Source::UriUser(name) => first_header(request, name).and_then(uri_user),
            Source::DisplayBefore(sep) => first_header(request, "From")
                .map(display_name)
                .and_then(|d| d.split_once(sep.as_str()).map(|(a, _)| a.to_owned())),
            Source::CallId => first_header(request, "Call-ID").map(str::to_owned),
            Source::Empty => None,
        };
        raw.map(|r| clean(&r)).unwrap_or_default()
    }
}

impl QueueArgs {
    /// Checks the table; `None` when it has no marker and nothing else.
    pub fn resolve(&self) -> Result<Option<QueueRule>, SettingError> {
        let Some(marker) = &self.marker else {
            if *self == QueueArgs::default() {
                return Ok(None);
            }
            return Err(SettingError::new(
                "queue.marker",
                "the table needs a marker: the source that tells a queue call".to_owned(),
            ));
        };
        let marker = Source::parse("queue.marker", marker)?;
        let field = |key: &str, v: &Option<String>, default: Source| match v {
            Some(t) if t.trim().is_empty() => Ok(Source::Empty),
            Some(t) => Source::parse(key, t),
            None => Ok(default),
        };
        Ok(Some(QueueRule {
            queue_call_id: field("queue.queue_call_id", &self.queue_call_id, Source::CallId)?,
            queue_number: field("queue.queue_number", &self.queue_number, Source::Empty)?,
            queue_id: field("queue.queue_id", &self.queue_id, Source::Empty)?,
            queue_name: field("queue.queue_name", &self.queue_name, marker.clone())?,
            marker,
        }))
    }
}

impl QueueRule {
    /// The queue fields of `request`, when it is a queue call.
    pub fn fields(&self, request: &sip::Request) -> Option<QueueFields> {
        if self.marker.value(request).is_empty() {
            return None;
        }
        Some(QueueFields {
            queue_call_id: self.queue_call_id.value(request),
            queue_number: self.queue_number.value(request),
            queue_id: self.queue_id.value(request),
            queue_name: self.queue_name.value(request),
        })
    }
}

/// The first header called `name` (any case; compact forms count as their full name).
fn first_header<'a>(request: &'a sip::Request, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value())
}

/// A header value's parameter (after the `<URI>`, or after the first `;` without one),
/// unquoted; a parameter without a value gives `""`, which counts as none.
fn header_param(value: &str, param: &str) -> Option<String> {
    let params = match value.find('<') {
        Some(open) => value[open..].split_once('>').map(|(_, p)| p)?,
        None => value.split_once(';').map(|(_, p)| p)?,
    };
    // The first entry only (a header may hold several, comma-separated).
    let params = params.split(',').next().unwrap_or(params);
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(param)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The user part of the first `sip:`, `sips:` or `tel:` URI in a header value.
fn uri_user(value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    let (at, scheme_len) = ["sips:", "sip:", "tel:"]
        .iter()
        .filter_map(|s| lower.find(s).map(|i| (i, s.len())))
        .min_by_key(|(i, _)| *i)?;
    let rest = &value[at + scheme_len..];
    let end = rest.find(['>', ',', ' ', '"']).unwrap_or(rest.len());
    let uri = &rest[..end];
    let user = if lower[at..].starts_with("tel:") {
        uri.split(';').next().unwrap_or(uri)
    } else {
        uri.split_once('@')?.0
    };
    let user = user.split(';').next().unwrap_or(user);
    (!user.is_empty()).then(|| percent_decoded(user))
}

/// `%XX` escapes decoded where they make UTF-8 text; others kept as written.
fn percent_decoded(t: &str) -> String {
    let bytes = t.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| t.to_owned())
}

/// A From value's display name: before `<`, unquoted.
fn display_name(value: &str) -> String {
    let Some(open) = value.find('<') else {
        return String::new();
    };
    let name = value[..open].trim();
    let name = name
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(name);
    name.replace("\\\"", "\"")
}

/// A peer's text made safe to pass on: no control or formatting characters, trimmed, at
/// most [`MAX_FIELD`] characters.
pub fn clean(t: &str) -> String {
    t.chars()
        .filter(|&c| !super::stack::invisible(c))
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_FIELD)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(extra: &str) -> sip::Request {
        let text = format!(
            "INVITE sip:1001@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
             From: \"Sales: Ann\" <sip:2001@127.0.0.1>;tag=a\r\n\
             To: <sip:1001@127.0.0.1>\r\n\
             Call-ID: abc@127.0.0.1\r\n\
             CSeq: 1 INVITE\r\n\
             {extra}\
             Content-Length: 0\r\n\r\n"
        );
        sip::Request::try_from(text.as_str()).expect("a test INVITE parses")
    }

    fn rule(marker: &str) -> QueueArgs {
        QueueArgs {
            marker: Some(marker.into()),
            ..QueueArgs::default()
        }
    }

    #[test]
    fn each_source_reads_its_value() {
        let r = invite(
            "X-Queue-Name: Support\r\n\
             Diversion: <sip:%2B358100@pbx.example>;reason=unconditional;counter=1\r\n\
             History-Info: <sip:5500@pbx.example>;index=1, <sip:1001@pbx.example>;index=1.1\r\n\
             Alert-Info: <http://x/ring>;info=queue-7\r\n\
             P-Called-Party-ID: <tel:+358200;phone-context=x>\r\n",
        );
        let cases = [
            ("header:X-Queue-Name", "Support"),
            ("header:x-queue-name", "Support"),
            ("header:X-Missing", ""),
            ("uri-user:Diversion", "+358100"),
            ("param:Diversion:reason", "unconditional"),
            ("uri-user:History-Info", "5500"),
            ("param:Alert-Info:info", "queue-7"),
            ("uri-user:P-Called-Party-ID", "+358200"),
            ("uri-user:To", "1001"),
            ("display-before:: ", "Sales"),
            ("display-before:/", ""),
            ("call-id", "abc@127.0.0.1"),
        ];
        for (source, want) in cases {
            let s = Source::parse("k", source).expect(source);
            assert_eq!(s.value(&r), want, "{source}");
        }
    }

    #[test]
    fn bad_sources_are_refused_with_their_key() {
        for t in [
            "",
            "header:",
            "header:X Y",
            "header:X<",
            "param:X",
            "param:X:",
            "uri:X",
            "display-before:",
            &format!("header:{}", "x".repeat(65)),
        ] {
            let e = Source::parse("queue.marker", t).expect_err(t);
            assert_eq!(e.key, "queue.marker", "{t}");
        }
        let e = QueueArgs {
            queue_id: Some("header:X".into()),
            ..QueueArgs::default()
        }
        .resolve()
        .expect_err("no marker");
        assert_eq!(e.key, "queue.marker");
        assert_eq!(QueueArgs::default().resolve(), Ok(None));
    }

    #[test]
    fn a_queue_call_needs_the_marker_and_takes_the_defaults() {
        let r = rule("header:X-Queue-Name")
            .resolve()
            .expect("valid")
            .expect("set");
        assert_eq!(r.fields(&invite("")), None);
        assert_eq!(r.fields(&invite("X-Queue-Name:   \r\n")), None);
        assert_eq!(
            r.fields(&invite("X-Queue-Name: Support\r\n")),
            Some(QueueFields {
                queue_call_id: "abc@127.0.0.1".into(),
                queue_number: String::new(),
                queue_id: String::new(),
                queue_name: "Support".into(),
            })
        );
        let by_name = rule("display-before:: ")
            .resolve()
            .expect("valid")
            .expect("set");
        assert_eq!(
            by_name.fields(&invite("")).map(|f| f.queue_name),
            Some("Sales".into())
        );
    }

    #[test]
    fn hostile_values_are_cleaned_and_bounded() {
        assert_eq!(clean("a\u{1b}[31mb\u{7}c"), "a[31mbc");
        assert_eq!(clean("\u{202E}evil\u{2066}x\u{200B}"), "evilx");
        assert_eq!(clean(&"é".repeat(500)).chars().count(), MAX_FIELD);
        assert_eq!(clean("  pad  "), "pad");
        let long = "Q".repeat(10_000);
        let r = invite(&format!("X-Queue-Name: {long}\r\n"));
        assert_eq!(
            Source::Header("X-Queue-Name".into()).value(&r).len(),
            MAX_FIELD
        );
        assert_eq!(percent_decoded("%E2%80%AEx%zz%"), "\u{202E}x%zz%");
        // Decoded escapes are cleaned too.
        let r = invite("Diversion: <sip:%E2%80%AE123%07@x>\r\n");
        assert_eq!(Source::UriUser("Diversion".into()).value(&r), "123");
    }
}
