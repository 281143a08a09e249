//! Money: a whole number of minor units with its ISO 4217 currency. Arithmetic is checked
//! (overflow is an error, not a wrap) and never mixes currencies; amounts that move are
//! positive ([`Money::positive`]).

use std::fmt;

/// An ISO 4217 currency code: three ASCII capital letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// `code` if it is three ASCII capital letters.
    pub fn new(code: &str) -> Result<Self, MoneyError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(MoneyError::InvalidCurrency(code.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        // Three ASCII capitals, checked by `new`.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of one currency in minor units (cents, rupiah, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

/// Why an amount could not be made or computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0:?} is not an ISO 4217 currency code (three capital letters)")]
    InvalidCurrency(String),
    #[error("an amount must be a positive number of minor units, not {0}")]
    NotPositive(i64),
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("the amount overflows 64 bits")]
    Overflow,
}

impl Money {
    /// `minor` units of `currency` (any sign: balances and differences may be zero or less).
    pub fn new(minor: i64, currency: &str) -> Result<Self, MoneyError> {
        Ok(Self {
            minor,
            currency: Currency::new(currency)?,
        })
    }

    /// An amount that moves: more than zero.
    pub fn positive(minor: i64, currency: &str) -> Result<Self, MoneyError> {
        if minor <= 0 {
            return Err(MoneyError::NotPositive(minor));
        }
        Self::new(minor, currency)
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    fn same_currency(&self, other: &Self) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }

    pub fn checked_add(self, other: Self) -> Result<Self, MoneyError> {
        self.same_currency(&other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self { minor, ..self })
    }

    pub fn checked_sub(self, other: Self) -> Result<Self, MoneyError> {
        self.same_currency(&other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self { minor, ..self })
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.minor, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_three_capitals() {
        assert!(Currency::new("IDR").is_ok());
        for bad in ["idr", "ID", "IDRR", "", "1DR", "ÀBC"] {
            assert_eq!(
                Currency::new(bad),
                Err(MoneyError::InvalidCurrency(bad.to_owned()))
            );
        }
    }

    #[test]
    fn arithmetic_is_checked_and_never_mixes_currencies() {
        let idr = |m| Money::new(m, "IDR").unwrap();
        assert_eq!(idr(5).checked_add(idr(7)), Ok(idr(12)));
        assert_eq!(idr(5).checked_sub(idr(7)), Ok(idr(-2)));
        assert_eq!(idr(i64::MAX).checked_add(idr(1)), Err(MoneyError::Overflow));
        assert_eq!(idr(i64::MIN).checked_sub(idr(1)), Err(MoneyError::Overflow));
        let usd = Money::new(5, "USD").unwrap();
        assert!(matches!(
            idr(5).checked_add(usd),
            Err(MoneyError::CurrencyMismatch(..))
        ));
        assert!(matches!(
            idr(5).checked_sub(usd),
            Err(MoneyError::CurrencyMismatch(..))
        ));
    }

    #[test]
    fn moving_amounts_are_positive() {
        assert_eq!(Money::positive(0, "IDR"), Err(MoneyError::NotPositive(0)));
        assert_eq!(Money::positive(-1, "IDR"), Err(MoneyError::NotPositive(-1)));
        assert_eq!(Money::positive(1, "IDR").unwrap().minor(), 1);
        assert_eq!(Money::positive(1, "IDR").unwrap().to_string(), "1 IDR");
    }
}
