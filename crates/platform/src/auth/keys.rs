//! Who may sign what. Tokens are EdDSA (Ed25519) JWTs, and every workload that signs has a
//! key of its own; everyone verifies with the public keys, which are not secret.
//!
//! * Users' access tokens are signed by the user service's key ([`USER_TOKEN_SIGNER`]) and by
//!   no other: a token with a user subject under any other key is refused.
//! * A service token names its signer (`sub = service:<name>`, header `kid = <name>`): a
//!   workload can only speak for itself, and only with the permissions [`SERVICE_GRANTS`]
//!   gives it. That table pins the internal RPCs to their callers: only the movement and
//!   transaction services may post to the ledger (`saldo.post`), only the transaction service
//!   may check a CVV (`cards.verify`) or authenticate a merchant's API key, only the user
//!   service may read a user's grants. It is code, not configuration, so a stolen workload
//!   key cannot be widened by an environment variable.
//! * The gateway, the internet-facing workload, holds no private key at all.
//!
//! A key is the base64 of its 32-byte Ed25519 seed (`JWT_SIGNING_KEY`); the public keys are
//! `name=<base64 of the 32-byte public key>,…` (`JWT_PUBLIC_KEYS`). `make run`, the
//! Kubernetes secret script and the tests make one pair per workload.

use std::collections::BTreeMap;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{DecodingKey, EncodingKey};

/// The workload whose key signs users' access tokens.
pub const USER_TOKEN_SIGNER: &str = "user-service";

/// What each workload may claim in the service tokens it signs. A service token claiming
/// anything else, or naming another workload than its key's, is refused.
pub const SERVICE_GRANTS: &[(&str, &[&str])] = &[
    // a user's roles and permissions, when it signs their access token
    ("user-service", &["roles.grants.read"]),
    // the user a role is assigned to
    ("role-service", &["users.read"]),
    // the owner of a new card; its account's balance
    ("card-service", &["users.read", "saldo.read"]),
    ("merchant-service", &["users.read", "saldo.read"]),
    // the recipient of an email
    ("email-service", &["users.read"]),
    // the card of a movement, and its ledger posting (`saldo.backdate` is forwarded only for
    // callers that hold it themselves)
    (
        "topup-service",
        &["cards.read", "saldo.post", "saldo.backdate", "saldo.read"],
    ),
    (
        "withdraw-service",
        &["cards.read", "saldo.post", "saldo.backdate", "saldo.read"],
    ),
    (
        "transfer-service",
        &["cards.read", "saldo.post", "saldo.backdate", "saldo.read"],
    ),
    // payments: the card, its CVV, the merchant's API key, the ledger
    (
        "transaction-service",
        &[
            "cards.read",
            "cards.verify",
            "saldo.post",
            "merchants.authenticate",
            "saldo.backdate",
        ],
    ),
    // the seeder (a one-off job): the bootstrap admin and the demo data, through the public
    // APIs like any operator
    (
        "seeder",
        &[
            "users.read",
            "users.write",
            "roles.read",
            "roles.assign",
            "cards.read",
            "cards.write",
            "saldo.read",
            "saldo.backdate",
            "topups.read",
            "topups.write",
            "withdraws.read",
            "withdraws.write",
            "transfers.write",
            "merchants.read",
            "merchants.write",
            "merchants.review",
            "payments.read",
            "payments.write",
        ],
    ),
];

/// The permissions `service` may claim (none for an unknown name).
pub fn grants(service: &str) -> &'static [&'static str] {
    SERVICE_GRANTS
        .iter()
        .find(|(name, _)| *name == service)
        .map_or(&[], |(_, grants)| grants)
}

/// Every workload that signs tokens.
pub fn signers() -> impl Iterator<Item = &'static str> {
    SERVICE_GRANTS.iter().map(|(name, _)| *name)
}

/// The PKCS#8 (v1) encoding of an Ed25519 private key is this prefix and the 32-byte seed.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn thirty_two(what: &str, b64: &str) -> anyhow::Result<[u8; 32]> {
    STANDARD
        .decode(b64.trim())
        .with_context(|| format!("{what} is not base64"))?
        .try_into()
        .map_err(|_| anyhow::anyhow!("{what} must be 32 bytes (base64)"))
}

/// The signing key of a base64 seed, and its public key (base64).
pub(crate) fn signing_key(seed_b64: &str) -> anyhow::Result<(EncodingKey, String)> {
    let seed = thirty_two("JWT_SIGNING_KEY", seed_b64)?;
    let public = public_of(&seed);
    let mut der = PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&seed);
    Ok((EncodingKey::from_ed_der(&der), public))
}

/// The verifying key of a base64 public key.
pub(crate) fn verifying_key(name: &str, public_b64: &str) -> anyhow::Result<DecodingKey> {
    let public = thirty_two(&format!("the public key of {name}"), public_b64)?;
    ed25519_dalek::VerifyingKey::from_bytes(&public)
        .with_context(|| format!("the public key of {name} is not an Ed25519 point"))?;
    Ok(DecodingKey::from_ed_der(&public))
}

/// Reads `name=<base64>,…` (`JWT_PUBLIC_KEYS`).
pub fn parse_public_keys(raw: &str) -> anyhow::Result<BTreeMap<String, String>> {
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (name, key) = entry
                .split_once('=')
                .with_context(|| format!("JWT_PUBLIC_KEYS: {entry:?} is not name=<base64>"))?;
            verifying_key(name, key)?;
            Ok((name.trim().to_owned(), key.trim().to_owned()))
        })
        .collect()
}

/// A fresh key pair: (the base64 seed, the base64 public key).
pub fn generate() -> (String, String) {
    let seed: [u8; 32] = rand::random();
    (STANDARD.encode(seed), public_of(&seed))
}

/// The base64 public key of a seed.
fn public_of(seed: &[u8; 32]) -> String {
    STANDARD.encode(
        ed25519_dalek::SigningKey::from_bytes(seed)
            .verifying_key()
            .to_bytes(),
    )
}

/// A fresh key pair for every signing workload, and the JWT settings each would get: what
/// the tests run with (`make run` and the Kubernetes secret script make theirs with openssl).
#[derive(Clone, Debug)]
pub struct GeneratedKeys {
    pairs: BTreeMap<String, (String, String)>,
}

impl Default for GeneratedKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl GeneratedKeys {
    pub fn new() -> Self {
        Self {
            pairs: signers()
                .map(|name| (name.to_owned(), generate()))
                .collect(),
        }
    }

    /// The JWT settings of workload `name`: its own signing key (none for one that only
    /// verifies, like the gateway) and every signer's public key.
    pub fn config(&self, name: &str) -> super::JwtConfig {
        super::JwtConfig {
            signing_key: self
                .pairs
                .get(name)
                .map(|(seed, _)| crate::Secret::new(seed.clone())),
            key_id: name.to_owned(),
            public_keys: self
                .pairs
                .iter()
                .map(|(name, (_, public))| (name.clone(), public.clone()))
                .collect(),
            issuer: "payments-platform".into(),
            audience: "payments-api".into(),
            access_ttl: std::time::Duration::from_secs(900),
        }
    }

    /// `JWT_PUBLIC_KEYS`.
    pub fn public_keys(&self) -> String {
        self.pairs
            .iter()
            .map(|(name, (_, public))| format!("{name}={public}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `JWT_SIGNING_KEY` of workload `name`.
    pub fn signing_key(&self, name: &str) -> Option<&str> {
        self.pairs.get(name).map(|(seed, _)| seed.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_public_key_openssl_would() {
        // RFC 8032, test 1: the secret key and the public key it derives.
        let seed = hex_decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let public = hex_decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let (_, derived) = signing_key(&STANDARD.encode(seed)).unwrap();
        assert_eq!(derived, STANDARD.encode(public));
    }

    #[test]
    fn key_lists_are_checked() {
        let (_, public) = generate();
        let keys = parse_public_keys(&format!(" user-service={public} , seeder={public}")).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(parse_public_keys("user-service").is_err());
        assert!(parse_public_keys("user-service=c2hvcnQ=").is_err());
        assert!(signing_key("not base64!").is_err());
    }

    #[test]
    fn every_internal_permission_has_its_callers_only() {
        let holders = |permission: &str| {
            signers()
                .filter(|s| grants(s).contains(&permission))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            holders("saldo.post"),
            [
                "topup-service",
                "withdraw-service",
                "transfer-service",
                "transaction-service"
            ]
        );
        assert_eq!(holders("cards.verify"), ["transaction-service"]);
        assert_eq!(holders("merchants.authenticate"), ["transaction-service"]);
        assert_eq!(holders("roles.grants.read"), ["user-service"]);
        assert!(grants("gateway").is_empty());
    }

    #[test]
    fn the_local_run_makes_a_key_for_every_signer() {
        let script = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/local/common.sh"
        ))
        .unwrap();
        let line = script
            .lines()
            .find_map(|l| l.strip_prefix("JWT_SIGNERS=\""))
            .unwrap();
        let listed: Vec<&str> = line.trim_end_matches('"').split_whitespace().collect();
        assert_eq!(listed, signers().collect::<Vec<_>>());
    }

    fn hex_decode(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }
}
