//! Limits and the method catalogue of one kind of money request (`<PREFIX>_MIN_AMOUNT`,
//! `<PREFIX>_MAX_AMOUNT`, `<PREFIX>_METHODS`), and the checks of a request against them.

use platform::FieldViolation;

/// The top-up, withdraw and payment methods the platform knows (banks, e-wallets, retail
/// networks and card schemes), as in the reference platform.
pub const DEFAULT_METHODS: &[&str] = &[
    "alfamart",
    "indomart",
    "lawson",
    "dana",
    "ovo",
    "gopay",
    "linkaja",
    "jenius",
    "fastpay",
    "kudo",
    "bri",
    "mandiri",
    "bca",
    "bni",
    "bukopin",
    "e-banking",
    "visa",
    "mastercard",
    "discover",
    "american express",
    "paypal",
];

/// Limits and catalogue.
#[derive(Clone, Debug)]
pub struct Rules {
    pub min_amount: i64,
    pub max_amount: i64,
    pub methods: Vec<String>,
}

impl Rules {
    /// Reads `<prefix>_MIN_AMOUNT`, `<prefix>_MAX_AMOUNT` and `<prefix>_METHODS`.
    pub fn from_env(prefix: &str) -> anyhow::Result<Self> {
        let min_amount = platform::config::parsed(&format!("{prefix}_MIN_AMOUNT"), 100_i64)?;
        let max_amount =
            platform::config::parsed(&format!("{prefix}_MAX_AMOUNT"), 10_000_000_000_i64)?;
        anyhow::ensure!(
            0 < min_amount && min_amount <= max_amount,
            "{prefix}_MIN_AMOUNT must be positive and not above {prefix}_MAX_AMOUNT"
        );
        let methods =
            platform::config::list(&format!("{prefix}_METHODS"), &DEFAULT_METHODS.join(","))
                .into_iter()
                .map(|m| m.to_lowercase())
                .collect();
        Ok(Self {
            min_amount,
            max_amount,
            methods,
        })
    }

    /// `amount` must be positive and within the limits.
    pub fn check_amount(&self, amount: i64, violations: &mut Vec<FieldViolation>) {
        if amount <= 0 {
            violations.push(FieldViolation::new(
                "amount",
                "must be a positive number of minor units",
            ));
        } else if amount < self.min_amount || amount > self.max_amount {
            violations.push(FieldViolation::new(
                "amount",
                format!(
                    "must be between {} and {} minor units",
                    self.min_amount, self.max_amount
                ),
            ));
        }
    }

    /// `method` must be one of the catalogue.
    pub fn check_method(&self, method: &str, violations: &mut Vec<FieldViolation>) {
        if !self.methods.iter().any(|m| m == method) {
            violations.push(FieldViolation::new(
                "method",
                format!("must be one of {}", self.methods.join(", ")),
            ));
        }
    }
}

/// A card number field must hold 16 digits.
pub fn check_card_number(field: &'static str, number: &str, violations: &mut Vec<FieldViolation>) {
    if !(number.len() == 16 && number.bytes().all(|b| b.is_ascii_digit())) {
        violations.push(FieldViolation::new(field, "must be a 16-digit card number"));
    }
}
