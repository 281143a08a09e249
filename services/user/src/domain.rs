//! Domain types of the user service, parsed at the edge ("parse, don't validate"): an
//! [`Email`], a [`NewPassword`] that meets the strength policy and a [`PersonName`].

use platform::FieldViolation;

/// A syntactically valid, lower-cased email address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses an address; `field` names the request field in the error.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        let email = raw.trim().to_lowercase();
        let invalid = |why: &str| Err(FieldViolation::new(field, why));
        if email.is_empty() {
            return invalid("is required");
        }
        if email.len() > 254 {
            return invalid("must be at most 254 characters");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return invalid("must be an email address like name@example.com");
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return invalid("must be an email address like name@example.com");
        }
        Ok(Self(email))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that satisfies the policy: 10 to 128 characters, at least three of lower case,
/// upper case, digits and symbols, and not containing the email's local part.
pub struct NewPassword(platform::Secret<String>);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword([REDACTED])")
    }
}

impl NewPassword {
    /// Checks the policy; `email` (if known) must not appear in the password.
    pub fn parse(raw: &str, field: &str, email: Option<&Email>) -> Result<Self, FieldViolation> {
        let length = raw.chars().count();
        if length < 10 {
            return Err(FieldViolation::new(field, "must be at least 10 characters"));
        }
        if length > 128 {
            return Err(FieldViolation::new(field, "must be at most 128 characters"));
        }
        let classes = [
            raw.chars().any(|c| c.is_lowercase()),
            raw.chars().any(|c| c.is_uppercase()),
            raw.chars().any(|c| c.is_ascii_digit()),
            raw.chars().any(|c| !c.is_alphanumeric()),
        ]
        .iter()
        .filter(|present| **present)
        .count();
        if classes < 3 {
            return Err(FieldViolation::new(
                field,
                "must mix at least three of: lower case, upper case, digits, symbols",
            ));
        }
        if let Some(email) = email {
            let local = email.as_str().split('@').next().unwrap_or_default();
            if local.len() >= 4 && raw.to_lowercase().contains(local) {
                return Err(FieldViolation::new(
                    field,
                    "must not contain your email address",
                ));
            }
        }
        Ok(Self(platform::Secret::new(raw.to_owned())))
    }

    /// The password, for hashing.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// A first or last name: trimmed, 1 to 100 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    /// Parses a name.
    pub fn parse(raw: &str, field: &str) -> Result<Self, FieldViolation> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(FieldViolation::new(field, "is required"));
        }
        if name.chars().count() > 100 {
            return Err(FieldViolation::new(field, "must be at most 100 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldViolation::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Collects field violations so a request reports every bad field at once.
#[derive(Debug, Default)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    /// Keeps the value or records the violation.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(v) => {
                self.0.push(v);
                None
            }
        }
    }

    /// Fails if anything was recorded.
    pub fn finish(self) -> Result<(), crate::error::UserError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(crate::error::UserError::Invalid(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ", "email").unwrap().as_str(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "ana@@example.com",
            "ana@-x.com",
        ] {
            assert!(
                Email::parse(bad, "email").is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn weak_passwords_are_rejected() {
        let email = Email::parse("ana.silva@example.com", "email").unwrap();
        assert!(NewPassword::parse("short1A", "password", None).is_err());
        assert!(NewPassword::parse("alllowercaseletters", "password", None).is_err());
        assert!(NewPassword::parse("xxAna.Silva99!", "password", Some(&email)).is_err());
        assert!(NewPassword::parse("Correct-Horse-42", "password", Some(&email)).is_ok());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            PersonName::parse("  Ana ", "first_name").unwrap().as_str(),
            "Ana"
        );
        assert!(PersonName::parse("   ", "first_name").is_err());
        assert!(PersonName::parse(&"x".repeat(101), "first_name").is_err());
    }
}
