//! Card numbers: generation by brand prefix with a Luhn check digit, validation and masking.

use rand::Rng;

/// Brands this platform issues, with their number prefixes (all 16-digit).
pub const BRANDS: &[(&str, &[&str])] = &[
    ("visa", &["4"]),
    ("mastercard", &["51", "52", "53", "54", "55"]),
    ("discover", &["6011"]),
    ("jcb", &["3528", "3540", "3589"]),
    ("unionpay", &["62"]),
];

/// Whether `brand` is issued here.
pub fn is_brand(brand: &str) -> bool {
    BRANDS.iter().any(|(name, _)| *name == brand)
}

/// The Luhn check digit for `payload` (all digits but the last).
fn check_digit(payload: &[u8]) -> u8 {
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    u8::try_from((10 - sum % 10) % 10).unwrap_or(0)
}

/// Whether `number` is 16 digits with a valid Luhn check digit.
pub fn is_valid(number: &str) -> bool {
    let digits: Vec<u8> = number
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    if digits.len() != 16 || number.len() != 16 {
        return false;
    }
    let (payload, last) = digits.split_at(15);
    last.first() == Some(&check_digit(payload))
}

/// A random 16-digit number of `brand` (None for an unknown brand).
pub fn generate(brand: &str, rng: &mut impl Rng) -> Option<String> {
    let prefixes = BRANDS.iter().find(|(name, _)| *name == brand)?.1;
    let prefix = prefixes[rng.gen_range(0..prefixes.len())];
    let mut digits: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
    while digits.len() < 15 {
        digits.push(rng.gen_range(0..10));
    }
    let check = check_digit(&digits);
    digits.push(check);
    Some(digits.iter().map(|d| char::from(b'0' + d)).collect())
}

/// `**** **** **** 4242`.
pub fn mask(number: &str) -> String {
    let last4 = number.get(number.len().saturating_sub(4)..).unwrap_or("");
    format!("**** **** **** {last4}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers_validate() {
        assert!(is_valid("4242424242424242"));
        assert!(is_valid("5555555555554444"));
        assert!(!is_valid("4242424242424241"));
        assert!(!is_valid("424242424242424"));
        assert!(!is_valid("42424242424242a2"));
    }

    #[test]
    fn generated_numbers_are_valid_and_branded() {
        let mut rng = rand::thread_rng();
        for (brand, prefixes) in BRANDS {
            for _ in 0..200 {
                let n = generate(brand, &mut rng).unwrap();
                assert!(is_valid(&n), "{n}");
                assert!(prefixes.iter().any(|p| n.starts_with(p)));
            }
        }
        assert!(generate("amex", &mut rng).is_none());
    }

    #[test]
    fn masking_keeps_last_four() {
        assert_eq!(mask("4242424242424242"), "**** **** **** 4242");
    }
}
