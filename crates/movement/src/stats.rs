//! Statistics of one kind of movement: the consumer that keeps the rollup from the service's
//! own completion events, the reports with their permission checks, and the rebuild.
//!
//! Longer than most files on purpose: the consumer, the reports and their permission checks
//! of one kind are kept together so the three kinds stay alike.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use events::payloads::movement as ev;
use events::{Envelope, EventHandler, HandlerError};
use platform::auth::Principal;
use proto::stats::v1 as pb;
use sqlx::{PgConnection, PgPool};
use stats::{Contribution, Reports, Scope};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::{Kind, MovementError};

const DEADLINE: Duration = Duration::from_secs(5);

/// Keeps `stats_monthly` from `<kind>.succeeded` / `<kind>.failed`.
#[derive(Clone)]
pub struct StatsEvents {
    pub kind: Kind,
    pub time_zone: String,
}

impl EventHandler for StatsEvents {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let succeeded = ev::event_type(self.kind.name(), true);
        let failed = ev::event_type(self.kind.name(), false);
        if event.event_type != succeeded && event.event_type != failed {
            return Ok(());
        }
        let m: ev::Movement = event
            .data_as()
            .map_err(|e| HandlerError::Permanent(e.into()))?;
        let mut scopes = vec![Scope::Card(m.card_id)];
        if let Some(to) = m.to_card_id {
            scopes.push(Scope::ToCard(to));
        }
        let contribution = Contribution {
            id: m.id,
            at: m.created_at,
            status: m.status,
            method: m.method.unwrap_or_default(),
            amount: m.amount,
            scopes,
        };
        stats::record(conn, &self.time_zone, &contribution).await?;
        Ok(())
    }
}

/// Recomputes the rollup from the movement table.
pub async fn rebuild(pool: &PgPool, time_zone: &str) -> anyhow::Result<u64> {
    let select = "SELECT id, created_at AS at, status, COALESCE(method, '') AS method, amount,
                card_id AS card, to_card_id AS to_card, NULL::uuid AS merchant,
                NULL::uuid AS api_key
         FROM movements WHERE status <> 'pending'";
    stats::rebuild(pool, time_zone, stats::Source { select }).await
}

/// Decides whether a caller without the kind's read permission may see one scope (a card's,
/// a merchant's): typically by asking the owning service with the caller's own token.
pub type Authorize = Arc<
    dyn Fn(Principal, Option<String>, Scope) -> BoxFuture<'static, Result<(), MovementError>>
        + Send
        + Sync,
>;

/// The card check of movement statistics: the card service answers the caller's own
/// `GetCard` (owner or `cards.read`), or NOT_FOUND.
///
/// A card never changes owner, so a yes is remembered for [`OWNER_TTL`] per (user, card): a
/// dashboard asks five services about one card at once, and each would otherwise ask the card
/// service again on every request. A no is never remembered, and the caller's token is still
/// checked (signature, expiry, denylist) on every request before this.
pub fn card_owner(
    cards: proto::card::v1::card_service_client::CardServiceClient<Channel>,
) -> Authorize {
    let seen = Arc::new(OwnerCache::default());
    Arc::new(move |caller, bearer, scope| {
        let (cards, seen) = (cards.clone(), seen.clone());
        Box::pin(async move {
            let card = match scope {
                Scope::Card(card) | Scope::ToCard(card) => card,
                _ => return Err(MovementError::NotFound("scope")),
            };
            let user = caller.user_id();
            if user.is_some_and(|user| seen.knows(user, card)) {
                return Ok(());
            }
            let request = platform::grpc::outgoing(
                proto::card::v1::CardIdRequest {
                    id: card.to_string(),
                },
                bearer.as_deref(),
                DEADLINE,
            );
            match cards.clone().get_card(request).await {
                Ok(_) => {
                    if let Some(user) = user {
                        seen.remember(user, card);
                    }
                    Ok(())
                }
                Err(s) if s.code() == tonic::Code::NotFound => {
                    Err(MovementError::CardNotFound("scope_id"))
                }
                Err(s) => Err(MovementError::Upstream("card service", s)),
            }
        })
    })
}

/// How long an owning service's "yes" is reused by [`card_owner`] (and the payment
/// statistics' merchant check).
pub const OWNER_TTL: Duration = Duration::from_secs(60);
const OWNER_CACHE_MAX: usize = 100_000;

/// (user, card or merchant) pairs the owning service confirmed the user may read, with when;
/// cleared when full. Only for things that never change owner; a no is never stored.
#[derive(Default)]
pub struct OwnerCache(
    std::sync::Mutex<std::collections::HashMap<(Uuid, Uuid), std::time::Instant>>,
);

impl OwnerCache {
    /// Whether `user` was confirmed for `thing` less than [`OWNER_TTL`] ago.
    pub fn knows(&self, user: Uuid, thing: Uuid) -> bool {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&(user, thing))
            .is_some_and(|at| at.elapsed() < OWNER_TTL)
    }

    /// Records that the owning service just confirmed `user` for `thing`.
    pub fn remember(&self, user: Uuid, thing: Uuid) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= OWNER_CACHE_MAX {
            map.clear();
        }
        map.insert((user, thing), std::time::Instant::now());
    }
}

/// The reports of one kind, as its gRPC stats service serves them.
#[derive(Clone)]
pub struct StatsApi {
    name: &'static str,
    read_permission: &'static str,
    scopes: &'static [pb::Scope],
    reports: Reports,
    authorize: Authorize,
}

fn internal(e: anyhow::Error) -> MovementError {
    MovementError::Internal(e)
}

fn total(t: stats::Total) -> Option<pb::Total> {
    Some(pb::Total {
        count: t.count,
        amount: t.amount,
    })
}

fn status_totals(t: stats::StatusTotals) -> Option<pb::StatusTotals> {
    Some(pb::StatusTotals {
        succeeded: total(t.succeeded),
        failed: total(t.failed),
    })
}

impl StatsApi {
    /// Statistics of a movement kind: everything, a card's, (transfers) a receiving card's.
    pub fn for_kind(kind: Kind, pool: PgPool, authorize: Authorize) -> Self {
        let scopes: &'static [pb::Scope] = if kind == Kind::Transfer {
            &[pb::Scope::All, pb::Scope::Card, pb::Scope::ReceiverCard]
        } else {
            &[pb::Scope::All, pb::Scope::Card]
        };
        Self::new(kind.name(), kind.read_permission(), scopes, pool, authorize)
    }

    /// Statistics named `name` (for errors) over the rollup in `pool`'s schema; the scopes it
    /// offers; `read_permission` sees every scope, others need `authorize`.
    pub fn new(
        name: &'static str,
        read_permission: &'static str,
        scopes: &'static [pb::Scope],
        pool: PgPool,
        authorize: Authorize,
    ) -> Self {
        Self {
            name,
            read_permission,
            scopes,
            reports: Reports::new(pool),
            authorize,
        }
    }

    /// The scope of a request, after checking the caller may see it.
    async fn scope(
        &self,
        caller: &Principal,
        bearer: Option<&str>,
        r: &pb::StatsRequest,
    ) -> Result<Scope, MovementError> {
        let requested = match pb::Scope::try_from(r.scope).unwrap_or(pb::Scope::All) {
            pb::Scope::Unspecified => pb::Scope::All,
            other => other,
        };
        if !self.scopes.contains(&requested) {
            return Err(platform::FieldViolation::new(
                "scope",
                format!("is not a scope of {} statistics", self.name),
            )
            .into());
        }
        let id = || {
            r.scope_id.parse::<Uuid>().map_err(|_| {
                MovementError::from(platform::FieldViolation::new("scope_id", "must be a UUID"))
            })
        };
        let scope = match requested {
            pb::Scope::Card => Scope::Card(id()?),
            pb::Scope::ReceiverCard => Scope::ToCard(id()?),
            pb::Scope::Merchant => Scope::Merchant(id()?),
            pb::Scope::ApiKey => Scope::ApiKey(id()?),
            _ => Scope::All,
        };
        if caller.has(self.read_permission) {
            return Ok(scope);
        }
        if scope == Scope::All {
            return Err(platform::auth::AuthError::MissingPermission(
                self.read_permission.to_owned(),
            )
            .into());
        }
        (self.authorize)(caller.clone(), bearer.map(str::to_owned), scope).await?;
        Ok(scope)
    }

    fn year(r: &pb::StatsRequest) -> Result<i32, MovementError> {
        if (2000..=2200).contains(&r.year) {
            Ok(r.year)
        } else {
            Err(platform::FieldViolation::new("year", "must be between 2000 and 2200").into())
        }
    }

    fn status(r: &pb::StatsRequest) -> &'static str {
        if r.failed { "failed" } else { "succeeded" }
    }

    pub async fn monthly_amounts(
        &self,
        caller: &Principal,
        bearer: Option<&str>,
        r: &pb::StatsRequest,
    ) -> Result<pb::MonthlyTotals, MovementError> {
        let scope = self.scope(caller, bearer, r).await?;
        let year = Self::year(r)?;
        let months = self
            .reports
            .monthly(scope, year, Self::status(r))
            .await
            .map_err(internal)?;
        Ok(pb::MonthlyTotals {
            year,
            months: months
                .into_iter()
                .zip(1..)
                .map(|(t, month)| pb::MonthTotal {
                    month,
                    total: total(t),
                })
                .collect(),
        })
    }

    pub async fn yearly_amounts(
        &self,
        caller: &Principal,
        bearer: Option<&str>,
        r: &pb::StatsRequest,
    ) -> Result<pb::YearlyTotals, MovementError> {
        let scope = self.scope(caller, bearer, r).await?;
        let years = self
            .reports
            .yearly(scope, Self::year(r)?, Self::status(r))
            .await
            .map_err(internal)?;
        Ok(pb::YearlyTotals {
            years: years
                .into_iter()
                .map(|(year, t)| pb::YearTotal {
                    year,
                    total: total(t),
                })
                .collect(),
        })
    }

    pub async fn methods(
        &self,
        caller: &Principal,
        bearer: Option<&str>,
        r: &pb::StatsRequest,
        yearly: bool,
    ) -> Result<pb::MethodTotals, MovementError> {
        let scope = self.scope(caller, bearer, r).await?;
        let year = Self::year(r)?;
        let rows: Vec<(i32, String, stats::Total)> = if yearly {
            self.reports
                .yearly_methods(scope, year, Self::status(r))
                .await
                .map_err(internal)?
        } else {
            self.reports
                .monthly_methods(scope, year, Self::status(r))
                .await
                .map_err(internal)?
                .into_iter()
                .map(|(m, method, t)| (i32::try_from(m).unwrap_or(0), method, t))
                .collect()
        };
        Ok(pb::MethodTotals {
            items: rows
                .into_iter()
                .map(|(period, method, t)| pb::MethodTotal {
                    period,
                    method,
                    total: total(t),
                })
                .collect(),
        })
    }

    /// All-time total of the scope (succeeded, or failed).
    pub async fn totals(
        &self,
        caller: &Principal,
        bearer: Option<&str>,
        r: &pb::StatsRequest,
    ) -> Result<pb::Total, MovementError> {
        let scope = self.scope(caller, bearer, r).await?;
        let t = self
            .reports
            .total(scope, Self::status(r))
            .await
            .map_err(internal)?;
        Ok(pb::Total {
            count: t.count,
            amount: t.amount,
        })
    }

    pub async fn status_comparison(
        &self,
        caller: &Principal,
        bearer: Option<&str>,
        r: &pb::StatsRequest,
        yearly: bool,
    ) -> Result<pb::StatusComparison, MovementError> {
        let scope = self.scope(caller, bearer, r).await?;
        let year = Self::year(r)?;
        let (current, previous) = if yearly {
            self.reports.yearly_status(scope, year).await
        } else {
            if !(1..=12).contains(&r.month) {
                return Err(platform::FieldViolation::new("month", "must be 1..=12").into());
            }
            self.reports.monthly_status(scope, year, r.month).await
        }
        .map_err(internal)?;
        Ok(pb::StatusComparison {
            current: status_totals(current),
            previous: status_totals(previous),
        })
    }
}

/// Implements a kind's `<Kind>StatsService` (the generated trait, given by its path) over a
/// [`StatsApi`] and an [`platform::auth::Authenticator`].
#[macro_export]
macro_rules! stats_service {
    ($handlers:ident, $trait:path) => {
        /// The statistics gRPC service of this kind.
        #[derive(Clone)]
        pub struct $handlers {
            pub api: $crate::stats::StatsApi,
            pub authenticator: platform::auth::Authenticator,
        }

        impl $handlers {
            async fn caller<T>(
                &self,
                request: &tonic::Request<T>,
            ) -> Result<(platform::auth::Principal, Option<String>), tonic::Status> {
                let caller = self.authenticator.require(request).await?;
                let bearer = platform::auth::bearer_token(request.metadata()).map(str::to_owned);
                Ok((caller, bearer))
            }
        }

        #[tonic::async_trait]
        impl $trait for $handlers {
            async fn monthly_amounts(
                &self,
                request: tonic::Request<proto::stats::v1::StatsRequest>,
            ) -> Result<tonic::Response<proto::stats::v1::MonthlyTotals>, tonic::Status> {
                let (caller, bearer) = self.caller(&request).await?;
                Ok(tonic::Response::new(
                    self.api
                        .monthly_amounts(&caller, bearer.as_deref(), request.get_ref())
                        .await?,
                ))
            }

            async fn yearly_amounts(
                &self,
                request: tonic::Request<proto::stats::v1::StatsRequest>,
            ) -> Result<tonic::Response<proto::stats::v1::YearlyTotals>, tonic::Status> {
                let (caller, bearer) = self.caller(&request).await?;
                Ok(tonic::Response::new(
                    self.api
                        .yearly_amounts(&caller, bearer.as_deref(), request.get_ref())
                        .await?,
                ))
            }

            async fn monthly_methods(
                &self,
                request: tonic::Request<proto::stats::v1::StatsRequest>,
            ) -> Result<tonic::Response<proto::stats::v1::MethodTotals>, tonic::Status> {
                let (caller, bearer) = self.caller(&request).await?;
                Ok(tonic::Response::new(
                    self.api
                        .methods(&caller, bearer.as_deref(), request.get_ref(), false)
                        .await?,
                ))
            }

            async fn yearly_methods(
                &self,
                request: tonic::Request<proto::stats::v1::StatsRequest>,
            ) -> Result<tonic::Response<proto::stats::v1::MethodTotals>, tonic::Status> {
                let (caller, bearer) = self.caller(&request).await?;
                Ok(tonic::Response::new(
                    self.api
                        .methods(&caller, bearer.as_deref(), request.get_ref(), true)
                        .await?,
                ))
            }

            async fn monthly_status(
                &self,
                request: tonic::Request<proto::stats::v1::StatsRequest>,
            ) -> Result<tonic::Response<proto::stats::v1::StatusComparison>, tonic::Status> {
                let (caller, bearer) = self.caller(&request).await?;
                Ok(tonic::Response::new(
                    self.api
                        .status_comparison(&caller, bearer.as_deref(), request.get_ref(), false)
                        .await?,
                ))
            }

            async fn yearly_status(
                &self,
                request: tonic::Request<proto::stats::v1::StatsRequest>,
            ) -> Result<tonic::Response<proto::stats::v1::StatusComparison>, tonic::Status> {
                let (caller, bearer) = self.caller(&request).await?;
                Ok(tonic::Response::new(
                    self.api
                        .status_comparison(&caller, bearer.as_deref(), request.get_ref(), true)
                        .await?,
                ))
            }

            async fn totals(
                &self,
                request: tonic::Request<proto::stats::v1::StatsRequest>,
            ) -> Result<tonic::Response<proto::stats::v1::Total>, tonic::Status> {
                let (caller, bearer) = self.caller(&request).await?;
                Ok(tonic::Response::new(
                    self.api
                        .totals(&caller, bearer.as_deref(), request.get_ref())
                        .await?,
                ))
            }
        }
    };
}
