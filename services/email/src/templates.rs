//! The email templates: files under `templates/` (built into the binary), or the same file
//! names under `EMAIL_TEMPLATES_DIR`. A `.txt` template's first line is the subject.

use std::path::Path;

use anyhow::Context;
use minijinja::Environment;

/// Every template file, as built into the binary.
const BUILT_IN: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    (
        "verify_email.txt",
        include_str!("../templates/verify_email.txt"),
    ),
    (
        "verify_email.html",
        include_str!("../templates/verify_email.html"),
    ),
    (
        "account_created.txt",
        include_str!("../templates/account_created.txt"),
    ),
    (
        "account_created.html",
        include_str!("../templates/account_created.html"),
    ),
    (
        "email_verified.txt",
        include_str!("../templates/email_verified.txt"),
    ),
    (
        "email_verified.html",
        include_str!("../templates/email_verified.html"),
    ),
    (
        "password_reset.txt",
        include_str!("../templates/password_reset.txt"),
    ),
    (
        "password_reset.html",
        include_str!("../templates/password_reset.html"),
    ),
    (
        "registration_attempted.txt",
        include_str!("../templates/registration_attempted.txt"),
    ),
    (
        "registration_attempted.html",
        include_str!("../templates/registration_attempted.html"),
    ),
    (
        "email_changed.txt",
        include_str!("../templates/email_changed.txt"),
    ),
    (
        "email_changed.html",
        include_str!("../templates/email_changed.html"),
    ),
    (
        "password_changed.txt",
        include_str!("../templates/password_changed.txt"),
    ),
    (
        "password_changed.html",
        include_str!("../templates/password_changed.html"),
    ),
    ("movement.txt", include_str!("../templates/movement.txt")),
    ("movement.html", include_str!("../templates/movement.html")),
    ("payment.txt", include_str!("../templates/payment.txt")),
    ("payment.html", include_str!("../templates/payment.html")),
    ("refund.txt", include_str!("../templates/refund.txt")),
    ("refund.html", include_str!("../templates/refund.html")),
    (
        "merchant_applied.txt",
        include_str!("../templates/merchant_applied.txt"),
    ),
    (
        "merchant_applied.html",
        include_str!("../templates/merchant_applied.html"),
    ),
    (
        "merchant_status.txt",
        include_str!("../templates/merchant_status.txt"),
    ),
    (
        "merchant_status.html",
        include_str!("../templates/merchant_status.html"),
    ),
    (
        "webhook_disabled.txt",
        include_str!("../templates/webhook_disabled.txt"),
    ),
    (
        "webhook_disabled.html",
        include_str!("../templates/webhook_disabled.html"),
    ),
    (
        "document_reviewed.txt",
        include_str!("../templates/document_reviewed.txt"),
    ),
    (
        "document_reviewed.html",
        include_str!("../templates/document_reviewed.html"),
    ),
];

/// A rendered email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The loaded templates.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates, each replaced by the file of the same name in `dir` if given.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for (name, built_in) in BUILT_IN {
            let source = match dir {
                Some(dir) => {
                    let path = dir.join(name);
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading template {}", path.display()))?
                }
                None => (*built_in).to_owned(),
            };
            env.add_template_owned(*name, source)
                .with_context(|| format!("parsing template {name}"))?;
        }
        Ok(Self { env })
    }

    /// Renders `<name>.txt` and `<name>.html` with `context`.
    pub fn render(&self, name: &str, context: &serde_json::Value) -> anyhow::Result<Rendered> {
        let text = self
            .env
            .get_template(&format!("{name}.txt"))?
            .render(context)
            .with_context(|| format!("rendering {name}.txt"))?;
        let html = self
            .env
            .get_template(&format!("{name}.html"))?
            .render(context)
            .with_context(|| format!("rendering {name}.html"))?;
        let (subject, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        let subject = subject.trim().to_owned();
        anyhow::ensure!(!subject.is_empty(), "{name}.txt renders an empty subject");
        Ok(Rendered {
            subject,
            text: body.trim_start_matches('\n').to_owned(),
            html,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_built_in_template_renders_with_a_subject() {
        let templates = Templates::load(None).unwrap();
        let context = serde_json::json!({
            "brand": "Payments", "base_url": "http://x", "name": "Ann", "link": "http://x/y",
            "expires_at": "tomorrow", "kind": "transfer", "pending": false, "succeeded": true,
            "amount": "IDR 1.00",
            "card": "**** 1", "to_card": "**** 2", "method": "bca", "reason": "", "id": "1",
            "merchant": "Shop <b>", "description": "", "failure": "", "payment_id": "2",
            "status": "active", "previous": "pending", "document_type": "tax_id", "note": "",
            "new_email": "ann@example.com", "url": "https://shop.example/hooks", "failures": 20,
            "last_error": "the endpoint answered HTTP 500",
        });
        for name in [
            "verify_email",
            "account_created",
            "email_verified",
            "password_reset",
            "password_changed",
            "email_changed",
            "registration_attempted",
            "movement",
            "payment",
            "refund",
            "merchant_applied",
            "merchant_status",
            "document_reviewed",
            "webhook_disabled",
        ] {
            let rendered = templates.render(name, &context).unwrap();
            assert!(!rendered.subject.is_empty(), "{name}");
            assert!(rendered.text.contains("Ann"), "{name}: {}", rendered.text);
            assert!(rendered.html.contains("Ann"), "{name}");
            assert!(
                !rendered.html.contains("Shop <b>"),
                "{name}: html must escape"
            );
        }
    }
}
