//! Card data as types that do not leak: a card number or CVV printed with `{:?}` (a derived
//! `Debug` of a request, a `tracing` field, a panic message) shows a mask, never the digits.
//! The digits are read only on purpose, with `expose()`.

use std::fmt;

/// A primary account number (PAN) as the caller sent it (validated where it is used, so
/// field errors can be collected).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    pub fn new(number: impl Into<String>) -> Self {
        Self(number.into())
    }

    /// The digits, for the card service and the request fingerprint only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `**** **** **** 1234` (the last four digits, as statements show them).
    pub fn masked(&self) -> String {
        let last4: String = self
            .0
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("**** **** **** {last4}")
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber({})", self.masked())
    }
}

/// A card verification value: never stored, never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Cvv(String);

impl Cvv {
    pub fn new(cvv: impl Into<String>) -> Self {
        Self(cvv.into())
    }

    /// The digits, for the card service's check only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cvv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cvv(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_card_data() {
        let number = CardNumber::new("4111111111111111");
        assert_eq!(format!("{number:?}"), "CardNumber(**** **** **** 1111)");
        assert_eq!(format!("{:?}", Cvv::new("123")), "Cvv(***)");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Request {
            number: CardNumber,
            cvv: Cvv,
        }
        let shown = format!(
            "{:?}",
            Request {
                number,
                cvv: Cvv::new("987")
            }
        );
        assert!(
            !shown.contains("411111") && !shown.contains("987"),
            "{shown}"
        );
    }
}
