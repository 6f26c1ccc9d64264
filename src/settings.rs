//! What every component's settings share: the error a value's check reports (the key and
//! the problem; the configuration adds where the value came from), and the common checks.
//! Each component keeps its own settings next to its code (flags and file keys derived
//! from one struct); this module depends on nothing else in the crate.

use std::fmt::Display;

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
