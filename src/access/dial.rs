//! The dial policy: which numbers `CallOut` (and any transfer) may dial. Patterns are a
//! number (`+358401234567`, exact) or a prefix ending in `*` (`+1900*`, `00*`); separators
//! ` -.()` are ignored as in `CallOut`. A number matching a denied pattern is refused; when
//! allowed patterns are configured, a number must also match one of them.

/// One pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    digits: String,
    prefix: bool,
}

impl Pattern {
    fn matches(&self, number: &str) -> bool {
        if self.prefix {
            number.starts_with(&self.digits)
        } else {
            number == self.digits
        }
    }
}

/// The configured policy; the default allows every number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DialPolicy {
    allow: Vec<Pattern>,
    deny: Vec<Pattern>,
}

/// Why a pattern is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a number or a prefix ending in * (an optional leading +, digits, separators ' -.()')"
)]
pub struct PatternError(String);

fn parse(entry: &str) -> Result<Pattern, PatternError> {
    let bad = || PatternError(entry.to_owned());
    let (body, prefix) = match entry.trim().strip_suffix('*') {
        Some(b) => (b, true),
        None => (entry.trim(), false),
    };
    let mut digits = String::new();
    for c in body.chars() {
        match c {
            ' ' | '-' | '.' | '(' | ')' => {}
            '+' if digits.is_empty() => digits.push('+'),
            '0'..='9' => digits.push(c),
            _ => return Err(bad()),
        }
    }
    let has_digit = digits.bytes().any(|b| b.is_ascii_digit());
    if !has_digit && !prefix || digits.len() > 33 {
        return Err(bad());
    }
    Ok(Pattern { digits, prefix })
}

/// Why a number is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It matches a denied pattern.
    Denied,
    /// Allowed patterns are configured and it matches none.
    NotAllowed,
}

impl DialPolicy {
    /// Parses the allowed and denied patterns.
    pub fn parse<S: AsRef<str>>(allow: &[S], deny: &[S]) -> Result<DialPolicy, PatternError> {
        Ok(DialPolicy {
            allow: allow
                .iter()
                .map(|p| parse(p.as_ref()))
                .collect::<Result<_, _>>()?,
            deny: deny
                .iter()
                .map(|p| parse(p.as_ref()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether any pattern is configured.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Checks a normalised number (`+` and digits).
    pub fn check(&self, number: &str) -> Result<(), Refusal> {
        if self.deny.iter().any(|p| p.matches(number)) {
            return Err(Refusal::Denied);
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(number)) {
            return Err(Refusal::NotAllowed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = DialPolicy::parse(&["+358*", "112", "0 (40) *"], &["+358600*", "+1900*"])
            .expect("valid");
        let cases = [
            ("+358401234567", Ok(())),
            ("112", Ok(())),
            ("1120", Err(Refusal::NotAllowed)),
            ("040123", Ok(())),
            ("+3586001234", Err(Refusal::Denied)),
            ("+19005550100", Err(Refusal::Denied)),
            ("+4612345", Err(Refusal::NotAllowed)),
        ];
        for (number, want) in cases {
            assert_eq!(p.check(number), want, "{number}");
        }
        let deny_only = DialPolicy::parse::<&str>(&[], &["00*"]).expect("valid");
        assert_eq!(deny_only.check("0046123"), Err(Refusal::Denied));
        assert_eq!(deny_only.check("046123"), Ok(()));
        assert!(DialPolicy::default().is_open());
        for bad in ["abc", "", "+", "1*2", "sip:1@x", "++1"] {
            assert!(DialPolicy::parse(&[bad], &[]).is_err(), "{bad:?}");
        }
        // `+*` is every international number; `*` alone is every number.
        assert_eq!(
            DialPolicy::parse::<&str>(&[], &["+*"]).map(|p| p.check("+1")),
            Ok(Err(Refusal::Denied))
        );
        assert_eq!(
            DialPolicy::parse(&["*"], &[]).map(|p| p.check("5")),
            Ok(Ok(()))
        );
    }
}
