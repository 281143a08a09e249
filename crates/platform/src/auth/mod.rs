//! JWT access tokens and the authenticated principal.
//!
//! Access tokens are EdDSA (Ed25519) JWTs with `typ = "access"`, a fixed issuer and audience,
//! a short lifetime and the caller's roles and permissions, so services authorize without a
//! lookup. Only the user service's key signs users' tokens; every other workload that calls
//! another signs its own *service tokens* with its own key, within the permissions it is
//! granted ([`keys`]); the gateway signs nothing. Refresh tokens are not JWTs at all (opaque
//! random strings owned by the user service), so one can never pass for an access token.
//! Logged-out access tokens are put on a Redis denylist until they expire; events that must
//! end *every* session of a user at once (password change or reset, email change, trash, a
//! revoked role, logout everywhere) set the user's session epoch ([`end_all_sessions`]):
//! tokens issued before it are refused. [`Authenticator`] checks both in one Redis round trip.
//!
//! Services calling services use short-lived *service tokens*: same format, subject
//! `service:<name>`, carrying only the permissions the call needs.
//!
//! Why one file of ~650 lines: token issue, verification, the denylist/epoch check and the
//! principal are one security boundary, read and reviewed together (a third of it is tests);
//! the key material and the grants are [`keys`].

pub mod keys;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::Status;
use uuid::Uuid;

use crate::Secret;

/// Token type claim of access tokens.
pub const ACCESS_TOKEN_TYPE: &str = "access";
/// Redis key prefix of revoked access-token ids.
pub const DENYLIST_PREFIX: &str = "auth:revoked-jti:";
/// Redis key prefix of users' session epochs (milliseconds since the Unix epoch).
pub const EPOCH_PREFIX: &str = "auth:epoch:";

/// JWT settings: `JWT_SIGNING_KEY` (this workload's Ed25519 key, the base64 of its 32-byte
/// seed; only workloads that sign tokens have one), `JWT_KEY_ID` (its name in the key set, by
/// default the service's name), `JWT_PUBLIC_KEYS` (`name=<base64>,…`: every signer's public
/// key), `JWT_ISSUER`, `JWT_AUDIENCE`, `ACCESS_TOKEN_TTL_SECS`. See [`keys`].
#[derive(Clone, Debug)]
pub struct JwtConfig {
    /// This workload's private key (base64 seed), if it signs.
    pub signing_key: Option<Secret<String>>,
    /// Its name: the `kid` of what it signs, and the subject of its service tokens.
    pub key_id: String,
    /// Every signer's public key (base64), by name.
    pub public_keys: BTreeMap<String, String>,
    /// `iss` claim.
    pub issuer: String,
    /// `aud` claim.
    pub audience: String,
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
}

impl JwtConfig {
    /// Reads the JWT settings of workload `name`.
    pub fn from_env(name: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            std::env::var("JWT_SECRET").map_or(true, |v| v.trim().is_empty()),
            "JWT_SECRET is no longer used: tokens are Ed25519-signed, each workload with its own \
             JWT_SIGNING_KEY, verified with JWT_PUBLIC_KEYS (see README, Security model)"
        );
        let public_keys = keys::parse_public_keys(&crate::config::required("JWT_PUBLIC_KEYS")?)?;
        let signing_key = crate::config::optional("JWT_SIGNING_KEY", "");
        let config = Self {
            signing_key: (!signing_key.trim().is_empty()).then(|| Secret::new(signing_key)),
            key_id: crate::config::optional("JWT_KEY_ID", name),
            public_keys,
            issuer: crate::config::optional("JWT_ISSUER", "payments-platform"),
            audience: crate::config::optional("JWT_AUDIENCE", "payments-api"),
            access_ttl: crate::config::seconds("ACCESS_TOKEN_TTL_SECS", 900)?,
        };
        if let Some(seed) = &config.signing_key {
            let (_, public) = keys::signing_key(seed.expose())?;
            anyhow::ensure!(
                config.public_keys.get(&config.key_id) == Some(&public),
                "JWT_SIGNING_KEY is not the key JWT_PUBLIC_KEYS lists for {:?}",
                config.key_id
            );
        }
        Ok(config)
    }
}

/// Claims of an access token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: a user id (UUID) or `service:<name>`.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Token id, used for revocation.
    pub jti: String,
    /// Token type; always [`ACCESS_TOKEN_TYPE`].
    pub typ: String,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Permission names.
    #[serde(default)]
    pub perms: Vec<String>,
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A user of the platform.
    User(Uuid),
    /// Another service of the platform.
    Service(String),
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Principal {
    /// Who.
    pub subject: Subject,
    /// Role names.
    pub roles: BTreeSet<String>,
    /// Permission names.
    pub permissions: BTreeSet<String>,
    /// Token id.
    pub token_id: String,
    /// When the token was issued, in milliseconds (from its UUIDv7 id).
    pub issued_at_ms: i64,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
}

impl Principal {
    /// The user id, if the caller is a user.
    pub fn user_id(&self) -> Option<Uuid> {
        match self.subject {
            Subject::User(id) => Some(id),
            Subject::Service(_) => None,
        }
    }

    /// Whether the caller holds `permission`.
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// Fails with `PERMISSION_DENIED` unless the caller holds `permission`.
    pub fn require(&self, permission: &str) -> Result<(), AuthError> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(AuthError::MissingPermission(permission.to_owned()))
        }
    }

    /// Allowed if the caller is `owner` or holds `permission`.
    pub fn require_self_or(&self, owner: Uuid, permission: &str) -> Result<(), AuthError> {
        if self.user_id() == Some(owner) || self.has(permission) {
            Ok(())
        } else {
            Err(AuthError::MissingPermission(permission.to_owned()))
        }
    }
}

/// Authentication and authorization failures.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No bearer token.
    #[error("authentication required")]
    Missing,
    /// Bad signature, wrong type/audience/issuer, malformed.
    #[error("invalid access token")]
    Invalid,
    /// Past its expiry.
    #[error("access token expired")]
    Expired,
    /// Revoked by logout.
    #[error("access token revoked")]
    Revoked,
    /// The caller lacks a permission.
    #[error("missing permission {0}")]
    MissingPermission(String),
    /// The denylist could not be checked.
    #[error("authentication backend unavailable")]
    Backend(#[source] anyhow::Error),
}

impl crate::DomainError for AuthError {
    fn kind(&self) -> crate::ErrorKind {
        match self {
            Self::Missing | Self::Invalid | Self::Expired | Self::Revoked => {
                crate::ErrorKind::Unauthenticated
            }
            Self::MissingPermission(_) => crate::ErrorKind::PermissionDenied,
            Self::Backend(_) => crate::ErrorKind::Unavailable,
        }
    }
    fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "AUTHENTICATION_REQUIRED",
            Self::Invalid => "INVALID_TOKEN",
            Self::Expired => "TOKEN_EXPIRED",
            Self::Revoked => "TOKEN_REVOKED",
            Self::MissingPermission(_) => "PERMISSION_DENIED",
            Self::Backend(_) => "AUTH_BACKEND_UNAVAILABLE",
        }
    }
}

impl From<AuthError> for Status {
    fn from(err: AuthError) -> Self {
        crate::error::to_status("auth", &err)
    }
}

/// Signs access tokens (the user service) and this workload's service tokens.
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    config: JwtConfig,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("key_id", &self.config.key_id)
            .finish_non_exhaustive()
    }
}

/// A signed access token.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The JWT.
    pub token: Secret<String>,
    /// Its id.
    pub token_id: String,
    /// Lifetime.
    pub expires_in: Duration,
}

impl TokenIssuer {
    /// An issuer with `config`'s signing key (an error for a workload that has none).
    pub fn new(config: &JwtConfig) -> anyhow::Result<Self> {
        let seed = config.signing_key.as_ref().with_context(|| {
            format!(
                "{} signs tokens and needs its JWT_SIGNING_KEY",
                config.key_id
            )
        })?;
        let (key, _) = keys::signing_key(seed.expose())?;
        Ok(Self {
            key,
            config: config.clone(),
        })
    }

    /// How long access tokens live.
    pub fn access_ttl(&self) -> Duration {
        self.config.access_ttl
    }

    /// An access token for a user.
    pub fn access_token(
        &self,
        user_id: Uuid,
        roles: Vec<String>,
        permissions: Vec<String>,
    ) -> anyhow::Result<IssuedToken> {
        self.sign(
            user_id.to_string(),
            roles,
            permissions,
            self.config.access_ttl,
        )
    }

    /// A one-minute token identifying this workload (its key id), carrying only
    /// `permissions` (within its [`keys::grants`], or verifiers refuse it).
    pub fn service_token(&self, permissions: &[&str]) -> anyhow::Result<IssuedToken> {
        self.sign(
            format!("service:{}", self.config.key_id),
            vec![],
            permissions.iter().map(|p| (*p).to_owned()).collect(),
            Duration::from_secs(60),
        )
    }

    fn sign(
        &self,
        sub: String,
        roles: Vec<String>,
        perms: Vec<String>,
        ttl: Duration,
    ) -> anyhow::Result<IssuedToken> {
        let now = Utc::now().timestamp();
        let jti = Uuid::now_v7().to_string();
        let claims = Claims {
            sub,
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            exp: now + i64::try_from(ttl.as_secs()).context("ttl too large")?,
            iat: now,
            jti: jti.clone(),
            typ: ACCESS_TOKEN_TYPE.to_owned(),
            roles,
            perms,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.config.key_id.clone());
        let token =
            jsonwebtoken::encode(&header, &claims, &self.key).context("signing access token")?;
        Ok(IssuedToken {
            token: Secret::new(token),
            token_id: jti,
            expires_in: ttl,
        })
    }
}

/// Verifies access tokens (the signer's key by `kid`, and what that signer may sign) and
/// checks the revocation denylist.
#[derive(Clone)]
pub struct Authenticator {
    keys: std::sync::Arc<HashMap<String, DecodingKey>>,
    validation: Validation,
    redis: Option<deadpool_redis::Pool>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// A verifier for `config`; with `redis`, revoked tokens are refused.
    pub fn new(config: &JwtConfig, redis: Option<deadpool_redis::Pool>) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[config.audience.as_str()]);
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        // `from_env` checked every key; a bad one here (a hand-built config) is left out.
        let keys = config
            .public_keys
            .iter()
            .filter_map(|(name, key)| Some((name.clone(), keys::verifying_key(name, key).ok()?)))
            .collect();
        Self {
            keys: std::sync::Arc::new(keys),
            validation,
            redis,
        }
    }

    /// Verifies a bearer token (signature, issuer, audience, expiry, type, denylist, the
    /// user's session epoch).
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let principal = self.decode(token)?;
        // Service tokens live a minute and are never logged out, so only user tokens are
        // checked against the denylist (one Redis round trip fewer per internal call).
        if let Subject::User(user) = principal.subject
            && let Some(redis) = &self.redis
        {
            let (revoked, epoch) = revocation_state(redis, &principal.token_id, user)
                .await
                .map_err(AuthError::Backend)?;
            if revoked || principal.issued_before(epoch) {
                return Err(AuthError::Revoked);
            }
        }
        Ok(principal)
    }

    /// Checks everything but the denylist (callers that batch the denylist lookup with other
    /// Redis work use [`denylist_key`] themselves).
    pub fn decode(&self, token: &str) -> Result<Principal, AuthError> {
        let signer = jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|h| h.kid)
            .ok_or(AuthError::Invalid)?;
        let key = self.keys.get(&signer).ok_or(AuthError::Invalid)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                    _ => AuthError::Invalid,
                }
            })?;
        let claims = data.claims;
        if claims.typ != ACCESS_TOKEN_TYPE {
            return Err(AuthError::Invalid);
        }
        let subject = match claims.sub.strip_prefix("service:") {
            Some(name) => Subject::Service(name.to_owned()),
            None => Subject::User(claims.sub.parse().map_err(|_| AuthError::Invalid)?),
        };
        // A key signs only what its workload may: users' tokens only the user service's, a
        // service token only its own workload's, within its grants.
        let allowed = match &subject {
            Subject::User(_) => signer == keys::USER_TOKEN_SIGNER,
            Subject::Service(name) => {
                *name == signer
                    && claims
                        .perms
                        .iter()
                        .all(|p| keys::grants(name).contains(&p.as_str()))
            }
        };
        if !allowed {
            tracing::warn!(signer, subject = %claims.sub, perms = ?claims.perms,
                "a token its signer may not sign");
            return Err(AuthError::Invalid);
        }
        let issued_at_ms = claims
            .jti
            .parse::<Uuid>()
            .ok()
            .and_then(|id| id.get_timestamp())
            .map_or(claims.iat.saturating_mul(1000), |t| {
                let (secs, nanos) = t.to_unix();
                i64::try_from(secs)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1000)
                    .saturating_add(i64::from(nanos / 1_000_000))
            });
        Ok(Principal {
            subject,
            roles: claims.roles.into_iter().collect(),
            permissions: claims.perms.into_iter().collect(),
            token_id: claims.jti,
            issued_at_ms,
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
        })
    }

    /// The principal of a gRPC request, or `UNAUTHENTICATED`.
    pub async fn require<T>(&self, request: &tonic::Request<T>) -> Result<Principal, AuthError> {
        let token = bearer_token(request.metadata()).ok_or(AuthError::Missing)?;
        self.verify(token).await
    }

    /// The principal of a gRPC request if it carries a token.
    pub async fn optional<T>(
        &self,
        request: &tonic::Request<T>,
    ) -> Result<Option<Principal>, AuthError> {
        match bearer_token(request.metadata()) {
            Some(token) => self.verify(token).await.map(Some),
            None => Ok(None),
        }
    }
}

/// The bearer token of gRPC metadata.
pub fn bearer_token(metadata: &tonic::metadata::MetadataMap) -> Option<&str> {
    metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The Redis key that marks access token `jti` as revoked.
pub fn denylist_key(jti: &str) -> String {
    format!("{DENYLIST_PREFIX}{jti}")
}

/// The Redis key of `user`'s session epoch.
pub fn epoch_key(user: Uuid) -> String {
    format!("{EPOCH_PREFIX}{user}")
}

impl Principal {
    /// Whether the token was issued at or before a session epoch (and so is ended).
    pub fn issued_before(&self, epoch_ms: Option<i64>) -> bool {
        epoch_ms.is_some_and(|epoch| self.issued_at_ms <= epoch)
    }
}

async fn revocation_state(
    redis: &deadpool_redis::Pool,
    jti: &str,
    user: Uuid,
) -> anyhow::Result<(bool, Option<i64>)> {
    let mut conn = redis.get().await.context("redis pool")?;
    deadpool_redis::redis::pipe()
        .exists(denylist_key(jti))
        .get(epoch_key(user))
        .query_async(&mut conn)
        .await
        .context("redis revocation check")
}

/// Ends every session of `user` at once: access tokens issued until now are refused from now
/// on (kept for `access_ttl`, after which they have expired anyway). Refresh tokens are the
/// user service's to revoke.
pub async fn end_all_sessions(
    redis: &deadpool_redis::Pool,
    user: Uuid,
    access_ttl: Duration,
) -> anyhow::Result<()> {
    let mut conn = redis.get().await.context("redis pool")?;
    let _: () = deadpool_redis::redis::cmd("SET")
        .arg(epoch_key(user))
        .arg(Utc::now().timestamp_millis())
        .arg("EX")
        .arg(access_ttl.as_secs().saturating_add(60))
        .query_async(&mut conn)
        .await
        .context("redis SET session epoch")?;
    Ok(())
}

/// Puts an access token id on the denylist until it would have expired anyway.
pub async fn revoke_access_token(
    redis: &deadpool_redis::Pool,
    jti: &str,
    expires_at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let ttl = (expires_at - Utc::now()).num_seconds().max(1);
    let mut conn = redis.get().await.context("redis pool")?;
    let _: () = deadpool_redis::redis::cmd("SET")
        .arg(format!("{DENYLIST_PREFIX}{jti}"))
        .arg(1)
        .arg("EX")
        .arg(ttl)
        .query_async(&mut conn)
        .await
        .context("redis SET")?;
    Ok(())
}

/// A service's own short-lived token for calls to other services, re-signed when it is older
/// than half its lifetime (signing on every call would cost a signature per request).
pub struct ServiceToken {
    issuer: TokenIssuer,
    permissions: Vec<&'static str>,
    cached: std::sync::Mutex<Option<(String, std::time::Instant)>>,
}

impl std::fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceToken")
            .field("service", &self.issuer.config.key_id)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

impl ServiceToken {
    /// Tokens naming the issuer's workload and carrying `permissions`.
    pub fn new(issuer: TokenIssuer, permissions: &[&'static str]) -> Self {
        Self {
            issuer,
            permissions: permissions.to_vec(),
            cached: std::sync::Mutex::new(None),
        }
    }

    /// A valid bearer token.
    pub fn bearer(&self) -> anyhow::Result<String> {
        let mut cached = self
            .cached
            .lock()
            .map_err(|_| anyhow::anyhow!("service token cache poisoned"))?;
        if let Some((token, issued)) = cached.as_ref()
            && issued.elapsed() < Duration::from_secs(30)
        {
            return Ok(token.clone());
        }
        let token = self
            .issuer
            .service_token(&self.permissions)?
            .token
            .expose()
            .to_owned();
        *cached = Some((token.clone(), std::time::Instant::now()));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key set of `names`, and the config of the first (its signer).
    fn config(names: &[&str]) -> (JwtConfig, BTreeMap<String, String>) {
        let pairs: Vec<(String, (String, String))> = names
            .iter()
            .map(|n| ((*n).to_owned(), keys::generate()))
            .collect();
        let seeds = pairs
            .iter()
            .map(|(n, (seed, _))| (n.clone(), seed.clone()))
            .collect();
        let config = JwtConfig {
            signing_key: Some(Secret::new(pairs[0].1.0.clone())),
            key_id: names[0].to_owned(),
            public_keys: pairs
                .iter()
                .map(|(n, (_, public))| (n.clone(), public.clone()))
                .collect(),
            issuer: "iss".into(),
            audience: "aud".into(),
            access_ttl: Duration::from_secs(60),
        };
        (config, seeds)
    }

    fn as_signer(config: &JwtConfig, seeds: &BTreeMap<String, String>, name: &str) -> JwtConfig {
        let mut other = config.clone();
        other.key_id = name.to_owned();
        other.signing_key = Some(Secret::new(seeds[name].clone()));
        other
    }

    #[tokio::test]
    async fn issued_tokens_verify_and_tampered_or_foreign_ones_do_not() {
        let (config, _) = config(&["user-service", "card-service"]);
        let issuer = TokenIssuer::new(&config).unwrap();
        let auth = Authenticator::new(&config, None);
        let id = Uuid::now_v7();
        let token = issuer
            .access_token(id, vec!["admin".into()], vec!["users.read".into()])
            .unwrap();
        let p = auth.verify(token.token.expose()).await.unwrap();
        assert_eq!(p.user_id(), Some(id));
        assert!(p.has("users.read"));

        let mut tampered = token.token.expose().clone();
        tampered.pop();
        assert!(matches!(
            auth.verify(&tampered).await,
            Err(AuthError::Invalid)
        ));

        // A key the verifier does not list, under a listed name.
        let (stranger, _) = self::config(&["user-service"]);
        let forged = TokenIssuer::new(&stranger)
            .unwrap()
            .access_token(id, vec![], vec![])
            .unwrap();
        assert!(matches!(
            auth.verify(forged.token.expose()).await,
            Err(AuthError::Invalid)
        ));

        // The old scheme: HS256 with a shared secret.
        let claims = jsonwebtoken::decode::<Claims>(
            token.token.expose(),
            &auth.keys["user-service"],
            &auth.validation,
        )
        .unwrap()
        .claims;
        let hs256 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&[7; 32]),
        )
        .unwrap();
        assert!(matches!(auth.verify(&hs256).await, Err(AuthError::Invalid)));
    }

    #[tokio::test]
    async fn a_key_signs_only_what_its_workload_may() {
        let (config, seeds) = config(&["user-service", "card-service", "transaction-service"]);
        let auth = Authenticator::new(&config, None);
        let card = TokenIssuer::new(&as_signer(&config, &seeds, "card-service")).unwrap();
        // Its own service tokens, within its grants: yes.
        let own = card.service_token(&["users.read"]).unwrap();
        let p = auth.verify(own.token.expose()).await.unwrap();
        assert_eq!(p.subject, Subject::Service("card-service".into()));
        // Beyond its grants (posting to the ledger): no.
        let beyond = card.service_token(&["saldo.post"]).unwrap();
        assert!(matches!(
            auth.verify(beyond.token.expose()).await,
            Err(AuthError::Invalid)
        ));
        // A user's token (an admin's, say): only the user service's key signs those.
        let admin = card
            .access_token(
                Uuid::now_v7(),
                vec!["admin".into()],
                vec!["users.write".into()],
            )
            .unwrap();
        assert!(matches!(
            auth.verify(admin.token.expose()).await,
            Err(AuthError::Invalid)
        ));
        // The transaction service may post.
        let payments = TokenIssuer::new(&as_signer(&config, &seeds, "transaction-service"))
            .unwrap()
            .service_token(&["saldo.post", "cards.verify"])
            .unwrap();
        assert!(auth.verify(payments.token.expose()).await.is_ok());
        // A workload without a key cannot sign at all.
        let mut gateway = config.clone();
        gateway.key_id = "gateway".into();
        gateway.signing_key = None;
        assert!(TokenIssuer::new(&gateway).is_err());
    }

    #[tokio::test]
    async fn expired_tokens_are_refused() {
        let (mut cfg, _) = config(&["user-service"]);
        let auth = Authenticator::new(&cfg, None);
        cfg.access_ttl = Duration::from_secs(0);
        let issuer = TokenIssuer::new(&cfg).unwrap();
        let token = issuer.access_token(Uuid::now_v7(), vec![], vec![]).unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(matches!(
            auth.verify(token.token.expose()).await,
            Err(AuthError::Expired)
        ));
    }
}
