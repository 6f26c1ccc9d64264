//! Phone links: the number in a `tel:` (RFC 3966), `callto:` or `sip:`/`sips:` URI.
//!
//! What each part becomes:
//!
//! - the scheme is matched ignoring case; `tel://` and `callto://` (seen on web pages)
//!   are read as `tel:` and `callto:`;
//! - the number: `%`-escapes are decoded once (`%20`, `%2B`), then the number rules of
//!   `CallOut` apply ([`PhoneNumber::parse`]): the visual separators `-`, `.`, `(`, `)`
//!   and spaces are removed, and what is left must be an optional leading `+` and 1 to
//!   32 digits. A local number with `*` or `#` (a service code) is refused;
//! - `;ext=` (an extension) is not dialled: it is returned, for the user to key in once
//!   the call is answered;
//! - `;phone-context=` is not used: a local number is dialled as written, as on a desk
//!   phone (the context is returned, for the messages);
//! - `;isub=` and any other parameter are ignored;
//! - in a `sip:`/`sips:` URI only the user part counts (before `@`, without a password
//!   or its own `;` parameters); the host, the URI's parameters and its `?headers` are
//!   ignored: the call goes through the configured phone, never to the host a link
//!   names. `callto:`'s `?call`-style query is ignored too.
//!
//! Hostile input is refused before any of that: more than [`MAX_URI_BYTES`] bytes, a
//! control character or a character outside ASCII (raw or `%`-encoded), a broken
//! `%`-escape, more than [`MAX_PARAMS`] parameters, or a parameter given twice.

use std::fmt;

use crate::phone::number::{NumberError, PhoneNumber};

/// The longest link accepted, in bytes.
pub const MAX_URI_BYTES: usize = 1024;
/// The most `;` parameters accepted.
pub const MAX_PARAMS: usize = 16;
/// The longest `;phone-context=` kept for messages, in characters.
const MAX_CONTEXT: usize = 64;

/// A link's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `tel:` (RFC 3966).
    Tel,
    /// `callto:`.
    Callto,
    /// `sip:`.
    Sip,
    /// `sips:`.
    Sips,
}

impl Scheme {
    /// Every scheme, as written in links (lower case, without the colon).
    pub const ALL: [&'static str; 4] = ["tel", "callto", "sip", "sips"];

    fn from_name(name: &str) -> Option<Scheme> {
        match name.to_ascii_lowercase().as_str() {
            "tel" => Some(Scheme::Tel),
            "callto" => Some(Scheme::Callto),
            "sip" => Some(Scheme::Sip),
            "sips" => Some(Scheme::Sips),
            _ => None,
        }
    }
}

/// What a link asks to dial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneLink {
    /// The link's scheme.
    pub scheme: Scheme,
    /// The number to dial, normalised.
    pub number: PhoneNumber,
    /// The `;ext=` extension (digits), not dialled.
    pub extension: Option<String>,
    /// The `;phone-context=`, not used.
    pub context: Option<String>,
}

/// Why a link cannot be dialled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Longer than [`MAX_URI_BYTES`].
    #[error("the link is too long (more than {MAX_URI_BYTES} bytes)")]
    TooLong,
    /// A control character, raw or `%`-encoded.
    #[error("the link holds a control character")]
    ControlCharacter,
    /// A character outside ASCII, raw or `%`-encoded.
    #[error("the link holds characters that have no place in a phone number")]
    NotAscii,
    /// A `%` not followed by two hexadecimal digits.
    #[error("the link holds a broken %-escape")]
    BadEscape,
    /// Not `tel:`, `callto:`, `sip:` or `sips:`.
    #[error("not a phone link: only tel:, callto:, sip: and sips: links are dialled")]
    UnknownScheme,
    /// More than [`MAX_PARAMS`] parameters.
    #[error("the link has more than {MAX_PARAMS} ;parameters")]
    TooManyParams,
    /// A parameter given twice, or an extension that is not digits.
    #[error("the link's ;{0}= parameter is not valid (given twice, or not digits)")]
    BadParam(&'static str),
    /// A `sip:` address with no number in its user part.
    #[error("the sip: address names no phone number (only a name or a host)")]
    NoNumber,
    /// The number breaks the number rules.
    #[error("the link's number cannot be dialled: {0}")]
    Number(NumberError),
}

/// Reads a link. Leading and trailing spaces (as a shell or a browser may leave) are
/// removed first; nothing else is forgiven.
pub fn parse(uri: &str) -> Result<PhoneLink, LinkError> {
    if uri.len() > MAX_URI_BYTES {
        return Err(LinkError::TooLong);
    }
    check_chars(uri)?;
    let uri = uri.trim_matches(' ');
    let (scheme, rest) = uri.split_once(':').ok_or(LinkError::UnknownScheme)?;
    let scheme = Scheme::from_name(scheme).ok_or(LinkError::UnknownScheme)?;
    let subscriber = match scheme {
        Scheme::Tel => rest.strip_prefix("//").unwrap_or(rest),
        Scheme::Callto => {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            rest.split_once('?').map_or(rest, |(s, _)| s)
        }
        Scheme::Sip | Scheme::Sips => {
            let rest = rest.split_once('?').map_or(rest, |(s, _)| s);
            match rest.split_once('@') {
                // The user part, without a password.
                Some((user, _host)) => user.split_once(':').map_or(user, |(u, _)| u),
                // No user part: `sip:+358401234567` is read as a number, a host is not.
                None => rest,
            }
        }
    };
    let mut parts = subscriber.split(';');
    let number = parts.next().unwrap_or_default();
    let mut extension = None;
    let mut context = None;
    let mut count = 0usize;
    for param in parts {
        if param.is_empty() {
            continue;
        }
        count += 1;
        if count > MAX_PARAMS {
            return Err(LinkError::TooManyParams);
        }
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let name = decode(name)?.to_ascii_lowercase();
        match name.as_str() {
            "ext" => {
                if extension.is_some() {
                    return Err(LinkError::BadParam("ext"));
                }
                let digits = PhoneNumber::parse(&decode(value)?)
                    .ok()
                    .filter(|n| !n.as_str().starts_with('+'))
                    .ok_or(LinkError::BadParam("ext"))?;
                extension = Some(digits.as_str().to_owned());
            }
            "phone-context" => {
                if context.is_some() {
                    return Err(LinkError::BadParam("phone-context"));
                }
                context = Some(decode(value)?.chars().take(MAX_CONTEXT).collect());
            }
            // isub, and anything else: checked for escapes, then ignored.
            _ => {
                decode(value)?;
            }
        }
    }
    let number = decode(number)?;
    let parsed = PhoneNumber::parse(&number);
    let number = match (scheme, parsed) {
        (_, Ok(n)) => n,
        (Scheme::Sip | Scheme::Sips, Err(NumberError::InvalidCharacter | NumberError::Empty)) => {
            return Err(LinkError::NoNumber);
        }
        (_, Err(e)) => return Err(LinkError::Number(e)),
    };
    Ok(PhoneLink {
        scheme,
        number,
        extension,
        context,
    })
}

/// Refuses control characters and characters outside ASCII.
fn check_chars(text: &str) -> Result<(), LinkError> {
    for c in text.chars() {
        if c.is_control() {
            return Err(LinkError::ControlCharacter);
        }
        if !c.is_ascii() {
            return Err(LinkError::NotAscii);
        }
    }
    Ok(())
}

/// Decodes `%`-escapes once; what they decode to must be printable ASCII.
fn decode(text: &str) -> Result<String, LinkError> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| {
                bytes
                    .get(j)
                    .and_then(|h| (*h as char).to_digit(16))
                    .ok_or(LinkError::BadEscape)
            };
            let value = hex(i + 1)? * 16 + hex(i + 2)?;
            let c = char::from_u32(value).ok_or(LinkError::BadEscape)?;
            check_chars(c.encode_utf8(&mut [0; 4]))?;
            out.push(c);
            i += 3;
        } else {
            out.push(b as char);
            i += 1;
        }
    }
    Ok(out)
}

impl fmt::Display for PhoneLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.number.as_str())?;
        if let Some(ext) = &self.extension {
            write!(f, " (extension {ext})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (link, the number dialled and the extension, or the error)
    type Case<'a> = (&'a str, Result<(&'a str, Option<&'a str>), LinkError>);

    #[test]
    fn link_table() {
        let long_number = format!("tel:+{}", "1".repeat(33));
        let max_number = format!("tel:+{}", "1".repeat(32));
        let max_digits = format!("+{}", "1".repeat(32));
        let too_long = format!("tel:+358401234567;x={}", "a".repeat(MAX_URI_BYTES));
        let many_params = format!("tel:+358401234567{}", ";a=b".repeat(MAX_PARAMS + 1));
        let enough_params = format!("tel:+358401234567{}", ";a=b".repeat(MAX_PARAMS));
        let nc = LinkError::Number(NumberError::InvalidCharacter);
        let cases: Vec<Case> = vec![
            // Valid.
            ("tel:+358401234567", Ok(("+358401234567", None))),
            ("tel:+358-40-123 4567", Ok(("+358401234567", None))),
            ("tel:+358-40-123%204567", Ok(("+358401234567", None))),
            ("tel:+1-(201)-555.0123", Ok(("+12015550123", None))),
            ("tel:0401234567", Ok(("0401234567", None))),
            ("tel:112", Ok(("112", None))),
            (
                "tel:+358401234567;ext=123",
                Ok(("+358401234567", Some("123"))),
            ),
            ("tel:040123;phone-context=+358", Ok(("040123", None))),
            (
                "tel:7042;phone-context=example.com;ext=1-2",
                Ok(("7042", Some("12"))),
            ),
            ("tel:+358401234567;isub=1411", Ok(("+358401234567", None))),
            ("callto:+358401234567", Ok(("+358401234567", None))),
            ("callto://+358401234567", Ok(("+358401234567", None))),
            ("callto:+358401234567?call", Ok(("+358401234567", None))),
            (
                "sip:+358401234567@pbx.example.com",
                Ok(("+358401234567", None)),
            ),
            (
                "sips:+358401234567;phone-context=+358@pbx.example.com;user=phone",
                Ok(("+358401234567", None)),
            ),
            ("sip:1234:secret@10.0.0.1?subject=x", Ok(("1234", None))),
            ("sip:+358401234567", Ok(("+358401234567", None))),
            // Odd, but read.
            ("TEL:+358401234567", Ok(("+358401234567", None))),
            ("Tel://+358401234567", Ok(("+358401234567", None))),
            ("  tel:+358401234567 ", Ok(("+358401234567", None))),
            ("tel:%2B358401234567", Ok(("+358401234567", None))),
            ("tel:%2b358%34%30", Ok(("+35840", None))),
            ("tel:+358401234567;;", Ok(("+358401234567", None))),
            ("tel:+358401234567;EXT=9", Ok(("+358401234567", Some("9")))),
            (
                "tel:+358401234567;%65xt=9",
                Ok(("+358401234567", Some("9"))),
            ),
            (&enough_params, Ok(("+358401234567", None))),
            (&max_number, Ok((&max_digits, None))),
            // Not numbers.
            ("tel:", Err(LinkError::Number(NumberError::Empty))),
            ("tel:;ext=1", Err(LinkError::Number(NumberError::Empty))),
            ("tel:*21#", Err(nc.clone())),
            ("tel:12#", Err(nc.clone())),
            ("tel:+358401234567?x=1", Err(nc.clone())),
            ("tel:1+2", Err(nc.clone())),
            ("tel:abc", Err(nc.clone())),
            (&long_number, Err(LinkError::Number(NumberError::TooLong))),
            ("callto:someone.skype", Err(nc.clone())),
            ("sip:alice@example.com", Err(LinkError::NoNumber)),
            ("sip:pbx.example.com", Err(LinkError::NoNumber)),
            ("http://example.com/", Err(LinkError::UnknownScheme)),
            ("javascript:alert(1)", Err(LinkError::UnknownScheme)),
            ("+358401234567", Err(LinkError::UnknownScheme)),
            ("", Err(LinkError::UnknownScheme)),
            ("telx:+358401234567", Err(LinkError::UnknownScheme)),
            // Hostile.
            (&too_long, Err(LinkError::TooLong)),
            (&many_params, Err(LinkError::TooManyParams)),
            ("tel:+358\n401234567", Err(LinkError::ControlCharacter)),
            ("tel:+358401234567\r\n", Err(LinkError::ControlCharacter)),
            (
                "tel:+358401234567\u{1b}[2J",
                Err(LinkError::ControlCharacter),
            ),
            ("tel:+358\u{0}1", Err(LinkError::ControlCharacter)),
            ("tel:+358\u{9b}1", Err(LinkError::ControlCharacter)),
            ("tel:+358%0A401234567", Err(LinkError::ControlCharacter)),
            ("tel:+358%00", Err(LinkError::ControlCharacter)),
            (
                "tel:+358401234567;ext=%1b",
                Err(LinkError::ControlCharacter),
            ),
            ("tel:+358%7f", Err(LinkError::ControlCharacter)),
            ("tel:+358%C3%A9", Err(LinkError::NotAscii)),
            ("tel:+358١٢٣", Err(LinkError::NotAscii)),
            ("tel:+358\u{202e}1", Err(LinkError::NotAscii)),
            ("tel:+358%", Err(LinkError::BadEscape)),
            ("tel:+358%4", Err(LinkError::BadEscape)),
            ("tel:+358%zz", Err(LinkError::BadEscape)),
            ("tel:+358%%34", Err(LinkError::BadEscape)),
            // Decoded once: %2534 is "%34", not "4".
            ("tel:+358%2534", Err(nc.clone())),
            // An encoded ; is not a parameter.
            ("tel:+358401234567%3Bext=1", Err(nc.clone())),
            ("tel:+358401234567;rm -rf /", Ok(("+358401234567", None))),
            (
                "tel:+358401234567;ext=1;ext=2",
                Err(LinkError::BadParam("ext")),
            ),
            ("tel:+358401234567;ext=abc", Err(LinkError::BadParam("ext"))),
            ("tel:+358401234567;ext=+1", Err(LinkError::BadParam("ext"))),
            (
                "tel:1;phone-context=a;phone-context=b",
                Err(LinkError::BadParam("phone-context")),
            ),
            ("tel:+358401234567;x=%zz", Err(LinkError::BadEscape)),
            ("tel:$(reboot)", Err(nc.clone())),
            ("tel:`id`", Err(nc.clone())),
            ("tel:-1;--help", Ok(("1", None))),
            ("tel:<b>1</b>", Err(nc.clone())),
        ];
        for (link, want) in cases {
            let got = parse(link).map(|l| (l.number.as_str().to_owned(), l.extension));
            let want = want.map(|(n, e)| (n.to_owned(), e.map(str::to_owned)));
            assert_eq!(got, want, "{link:?}");
        }
    }

    #[test]
    fn the_context_is_kept_bounded() {
        let link = parse("tel:040123;phone-context=+358").expect("valid");
        assert_eq!(link.context.as_deref(), Some("+358"));
        let long = format!("tel:1;phone-context={}", "a".repeat(500));
        let link = parse(&long).expect("valid");
        assert_eq!(link.context.map(|c| c.len()), Some(MAX_CONTEXT));
        assert_eq!(
            parse("tel:+358401234567;ext=12").map(|l| l.to_string()),
            Ok("+358401234567 (extension 12)".to_owned())
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any input either fails or gives a number of the number rules, and never
            /// panics.
            #[test]
            fn parse_is_total(input in any::<String>()) {
                if let Ok(link) = parse(&input) {
                    let n = link.number.as_str();
                    let digits = n.strip_prefix('+').unwrap_or(n);
                    prop_assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
                }
            }

            /// Any tel: link of a valid number, with separators, gives that number.
            #[test]
            fn tel_numbers_round_trip(digits in "\\+?[0-9]{1,32}", sep in "[-. ()]{0,3}") {
                let link = format!("tel:{}{sep}", digits);
                prop_assert_eq!(parse(&link).map(|l| l.number.as_str().to_owned()), Ok(digits));
            }
        }
    }
}
