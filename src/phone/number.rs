//! Phone number validation, shared by every backend and the protocol layer.

use std::fmt;

/// The most digits a number may have.
pub const MAX_DIGITS: usize = 32;

/// A validated phone number: an optional leading `+` and 1 to 32 ASCII digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

/// Why a string is not a phone number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Nothing left after removing separators.
    #[error("the number is empty")]
    Empty,
    /// A character other than digits, a leading `+` or the separators ` -.()`.
    #[error("the number may hold only digits 0-9, one leading '+' and the separators ' -.()'")]
    InvalidCharacter,
    /// More than [`MAX_DIGITS`] digits.
    #[error("the number has more than 32 digits")]
    TooLong,
}

impl PhoneNumber {
    /// Validates `input`: spaces, `-`, `.`, `(` and `)` are removed; what remains must be an
    /// optional leading `+` and 1 to 32 ASCII digits.
    pub fn parse(input: &str) -> Result<PhoneNumber, NumberError> {
        let mut out = String::with_capacity(input.len().min(MAX_DIGITS + 1));
        let mut digits = 0usize;
        for c in input.chars() {
            match c {
                ' ' | '-' | '.' | '(' | ')' => {}
                '+' if out.is_empty() => out.push('+'),
                '0'..='9' => {
                    digits += 1;
                    if digits > MAX_DIGITS {
                        return Err(NumberError::TooLong);
                    }
                    out.push(c);
                }
                _ => return Err(NumberError::InvalidCharacter),
            }
        }
        if digits == 0 {
            return Err(NumberError::Empty);
        }
        Ok(PhoneNumber(out))
    }

    /// The normalised number.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with its middle digits masked, for logs: `+35840*****67`.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        let n = chars.len();
        if n <= 4 {
            return self.0.clone();
        }
        let keep_head = (n / 3).min(6);
        let keep_tail = (n / 5).min(3);
        chars
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if i < keep_head || i >= n - keep_tail {
                    c
                } else {
                    '*'
                }
            })
            .collect()
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let long = "1".repeat(33);
        let max = "1".repeat(32);
        let cases: &[(&str, Result<&str, NumberError>)] = &[
            ("+358449388834", Ok("+358449388834")),
            ("0505010269", Ok("0505010269")),
            ("+358 (40) 123-45.67", Ok("+358401234567")),
            ("  112 ", Ok("112")),
            (&max, Ok(&max)),
            (&long, Err(NumberError::TooLong)),
            ("", Err(NumberError::Empty)),
            ("+", Err(NumberError::Empty)),
            (" - . ", Err(NumberError::Empty)),
            ("12a4", Err(NumberError::InvalidCharacter)),
            ("1+2", Err(NumberError::InvalidCharacter)),
            ("++12", Err(NumberError::InvalidCharacter)),
            ("sip:123@evil.example", Err(NumberError::InvalidCharacter)),
            ("123;rm -rf /", Err(NumberError::InvalidCharacter)),
            ("12\n34", Err(NumberError::InvalidCharacter)),
            ("١٢٣", Err(NumberError::InvalidCharacter)),
            ("１２３", Err(NumberError::InvalidCharacter)),
            ("12#", Err(NumberError::InvalidCharacter)),
        ];
        for (input, want) in cases {
            let got = PhoneNumber::parse(input);
            match want {
                Ok(s) => assert_eq!(got.as_ref().map(|n| n.as_str()), Ok(*s), "{input:?}"),
                Err(e) => assert_eq!(got, Err(*e), "{input:?}"),
            }
        }
    }

    #[test]
    fn masking_keeps_ends() {
        let cases = [
            ("+358401234567", "+358*******67"),
            ("112", "112"),
            ("0505010269", "050*****69"),
        ];
        for (input, want) in cases {
            let n = PhoneNumber::parse(input).expect("valid");
            assert_eq!(n.masked(), want, "{input}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any input either fails or gives an optional + and 1 to 32 ASCII digits.
            #[test]
            fn parse_is_total_and_strict(input in any::<String>()) {
                if let Ok(n) = PhoneNumber::parse(&input) {
                    let digits = n.as_str().strip_prefix('+').unwrap_or(n.as_str());
                    prop_assert!((1..=MAX_DIGITS).contains(&digits.len()));
                    prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
                }
            }

            /// Separators anywhere are ignored.
            #[test]
            fn separators_are_removed(digits in "[0-9]{1,32}", seps in prop::collection::vec("[ .()-]{0,2}", 33)) {
                let mut input = String::new();
                for (i, d) in digits.chars().enumerate() {
                    input.push_str(&seps[i]);
                    input.push(d);
                }
                input.push_str(&seps[32]);
                prop_assert_eq!(PhoneNumber::parse(&input).map(|n| n.as_str().to_owned()), Ok(digits));
            }

            /// One character outside digits, a leading + and the separators makes it fail.
            #[test]
            fn any_other_character_fails(
                digits in "[0-9]{1,10}",
                bad in any::<char>().prop_filter("not allowed", |c| !c.is_ascii_digit() && !" .()-+".contains(*c)),
                at in 0usize..=10,
            ) {
                let mut input: Vec<char> = digits.chars().collect();
                input.insert(at.min(input.len()), bad);
                let input: String = input.into_iter().collect();
                prop_assert_eq!(PhoneNumber::parse(&input), Err(NumberError::InvalidCharacter));
            }

            /// Masking keeps the length and never shows the middle.
            #[test]
            fn masking_keeps_length(digits in "[0-9]{1,32}") {
                let n = PhoneNumber::parse(&digits).expect("valid");
                let masked = n.masked();
                prop_assert_eq!(masked.chars().count(), digits.len());
                if digits.len() > 4 {
                    prop_assert!(masked.contains('*'));
                }
            }
        }
    }
}
