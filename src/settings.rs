//! What every component's settings share: the error a value's check reports (the key and
//! the problem; the configuration adds where the value came from), and the common checks.
//! Each component keeps its own settings next to its code (flags and file keys derived
//! from one struct); this module depends on nothing else in the crate.

use std::fmt::{self, Display};

use serde::{Deserialize, Serialize};

/// A setting's value is unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingError {
    /// The key, as in the file (`answer_delay_ms`; `sim.answer_delay_ms` once placed).
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl SettingError {
    /// An error for `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> SettingError {
        SettingError {
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// The same error for a key inside the table `table`.
    pub fn within(self, table: &str) -> SettingError {
        SettingError {
            key: format!("{table}.{}", self.key),
            problem: self.problem,
        }
    }
}

/// A password: its `Debug` shows `Secret(<hidden>)`, it has no `Display`, and only
/// [`Secret::expose`] gives the text, so that no log line, error or `{:?}` of a settings
/// struct can carry it by accident. (De)serialised as the bare string, for the file's
/// keys and the configuration's layers; a value that is not a string is refused without
/// being repeated.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        /// Takes a string; any other value is refused in words that do not repeat it
        /// (serde's own message would: "invalid type: integer `123456`").
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a password in quotes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(not_text())
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(not_text())
            }
            fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<Secret, E> {
                Err(not_text())
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(not_text())
            }
            fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<Secret, E> {
                Err(not_text())
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(not_text())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(not_text())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(not_text())
            }
        }
        fn not_text<E: serde::de::Error>() -> E {
            E::custom("a password must be a string in quotes (the value is not repeated here)")
        }
        d.deserialize_any(Text)
    }
}

impl Secret {
    /// Wraps a password.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The password itself: for the one place that sends it (a digest answer, baresip's
    /// account line, the credential store).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is a password a SIP setting accepts: not empty, at most 256 bytes, no
    /// control characters.
    pub fn is_usable(&self) -> bool {
        !self.0.is_empty() && self.0.len() <= 256 && !self.0.chars().any(char::is_control)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret(text)
    }
}

/// `value` (or `default` when unset), refused outside `min..=max`.
pub fn in_range<T: PartialOrd + Display + Copy>(
    key: &str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
) -> Result<T, SettingError> {
    match value {
        None => Ok(default),
        Some(v) if v < min || v > max => Err(SettingError::new(
            key,
            format!("{v} is out of range; allowed {min} to {max}"),
        )),
        Some(v) => Ok(v),
    }
}

/// Parses `value` with `parse`, or says which values are allowed.
pub fn one_of<T>(
    key: &str,
    value: &str,
    parse: impl Fn(&str) -> Option<T>,
    allowed: &[&str],
) -> Result<T, SettingError> {
    parse(value).ok_or_else(|| {
        SettingError::new(
            key,
            format!("{value:?} is not one of {}", allowed.join(", ")),
        )
    })
}

/// The most characters of a value repeated in an error message or a log line.
pub const MAX_SHOWN: usize = 64;

/// A value as it may appear in an error message: at most [`MAX_SHOWN`] characters.
pub fn shown(text: &str) -> String {
    const MAX: usize = MAX_SHOWN;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let mut t: String = text.chars().take(MAX).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_hidden_from_debug_and_kept_in_serde() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<hidden>)");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(Secret(<hidden>))");
        assert_eq!(s.expose(), "hunter2");
        let json = serde_json::to_string(&s).expect("serialise");
        assert_eq!(json, "\"hunter2\"");
        let back: Secret = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, s);
        for other in ["123456", "true", "1.5", "[\"x\"]", "{\"a\": \"x\"}"] {
            let e = serde_json::from_str::<Secret>(other).expect_err(other);
            assert!(e.to_string().contains("must be a string"), "{e}");
            assert!(
                !e.to_string().contains("123456") && !e.to_string().contains('x'),
                "{e}"
            );
        }
        assert!(s.is_usable());
        for bad in ["", "a\nb", &"x".repeat(257)] {
            assert!(!Secret::new(bad).is_usable(), "{bad:?}");
        }
    }
}
