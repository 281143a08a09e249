//! The two services a movement talks to: the card service (who owns the card, is it usable,
//! its currency) and the ledger (the posting). Both are called with this service's own
//! short-lived token.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, Utc};
use platform::auth::ServiceToken;
use platform::money::Money;
use proto::card::v1::CardNumberRequest;
use proto::card::v1::card_service_client::CardServiceClient;
use proto::saldo::v1::saldo_service_client::SaldoServiceClient;
use proto::saldo::v1::{self as saldo_pb, PostingStatus, account_ref::Target};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::error::MovementError;

const DEADLINE: Duration = Duration::from_secs(5);

/// What a movement needs to know about a card.
#[derive(Clone, Debug)]
pub struct CardInfo {
    pub id: Uuid,
    pub user_id: Uuid,
    pub masked_number: String,
    pub currency: String,
    pub trashed: bool,
    pub expired: bool,
}

impl CardInfo {
    /// From the card service's answer.
    pub fn from_proto(card: &proto::card::v1::Card) -> Result<Self, MovementError> {
        let parse = |raw: &str| {
            raw.parse::<Uuid>().map_err(|e| {
                MovementError::Internal(anyhow::anyhow!("card service sent {raw:?}: {e}"))
            })
        };
        let now = Utc::now();
        let expiry_year = i32::try_from(card.expiry_year).unwrap_or(0);
        Ok(Self {
            id: parse(&card.id)?,
            user_id: parse(&card.user_id)?,
            masked_number: card.masked_number.clone(),
            currency: card.currency.clone(),
            trashed: card.deleted_at.is_some(),
            expired: (expiry_year, card.expiry_month) < (now.year(), now.month()),
        })
    }

    /// Money may move from or onto it: not trashed, not expired. `field` names the request
    /// field in errors.
    pub fn check_usable(&self, field: &'static str) -> Result<(), MovementError> {
        if self.trashed {
            Err(MovementError::CardInactive(field))
        } else if self.expired {
            Err(MovementError::CardExpired(field))
        } else {
            Ok(())
        }
    }
}

/// One side of a posting.
#[derive(Clone, Debug)]
pub enum Side {
    Card(Uuid),
    System(String),
    /// A merchant's settlement account.
    Merchant(Uuid),
}

/// Why a posting was refused: the ledger's closed set of rejections, and recovery's own
/// give-up. [`Rejection::code`] is the reason code stored with the failed record and shown
/// to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    InsufficientFunds,
    AccountClosed,
    CurrencyMismatch,
    /// Recovery's: the card's account never opened (see `lifecycle::ACCOUNT_WAIT`).
    AccountNotFound,
    /// The payment provider declined the operation (its code is kept beside it).
    ProviderDeclined,
    /// Recovery's: no provider of the route could take an operation a crash left unsent.
    ProviderUnavailable,
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Self::InsufficientFunds => saldo_pb::Rejection::InsufficientFunds.code(),
            Self::AccountClosed => saldo_pb::Rejection::AccountClosed.code(),
            Self::CurrencyMismatch => saldo_pb::Rejection::CurrencyMismatch.code(),
            Self::AccountNotFound => "ACCOUNT_NOT_FOUND",
            Self::ProviderDeclined => "PROVIDER_DECLINED",
            Self::ProviderUnavailable => "PROVIDER_UNAVAILABLE",
        }
    }

    /// The rejection whose code is `code` (as stored with a failed record).
    pub fn from_code(code: &str) -> Option<Self> {
        [
            Self::InsufficientFunds,
            Self::AccountClosed,
            Self::CurrencyMismatch,
            Self::AccountNotFound,
            Self::ProviderDeclined,
            Self::ProviderUnavailable,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// The ledger's rejection; `None` for UNSPECIFIED (a posted posting, or an unknown
    /// value from a newer ledger).
    fn from_proto(value: i32) -> Option<Self> {
        match saldo_pb::Rejection::try_from(value).ok()? {
            saldo_pb::Rejection::InsufficientFunds => Some(Self::InsufficientFunds),
            saldo_pb::Rejection::AccountClosed => Some(Self::AccountClosed),
            saldo_pb::Rejection::CurrencyMismatch => Some(Self::CurrencyMismatch),
            saldo_pb::Rejection::Unspecified => None,
        }
    }
}

/// The ledger's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Posted,
    Rejected(Rejection),
}

/// Clients of the card and saldo services.
#[derive(Clone)]
pub struct Upstream {
    cards: CardServiceClient<Channel>,
    saldo: SaldoServiceClient<Channel>,
    token: Arc<ServiceToken>,
}

impl Upstream {
    pub fn new(
        cards: CardServiceClient<Channel>,
        saldo: SaldoServiceClient<Channel>,
        token: ServiceToken,
    ) -> Self {
        Self {
            cards,
            saldo,
            token: Arc::new(token),
        }
    }

    fn bearer(&self) -> Result<String, MovementError> {
        self.token.bearer().map_err(MovementError::Internal)
    }

    /// The card with `number`; `field` names the request field in errors.
    pub async fn card(&self, field: &'static str, number: &str) -> Result<CardInfo, MovementError> {
        let request = platform::grpc::outgoing(
            CardNumberRequest {
                number: number.to_owned(),
            },
            Some(&self.bearer()?),
            DEADLINE,
        );
        let card = match self.cards.clone().get_card_by_number(request).await {
            Ok(card) => card.into_inner(),
            Err(s) if s.code() == tonic::Code::NotFound => {
                return Err(MovementError::CardNotFound(field));
            }
            Err(s) => return Err(MovementError::Upstream("card service", s)),
        };
        CardInfo::from_proto(&card)
    }

    /// The ledger's posting `posting_id` as `(amount, currency)` when it is posted; `None`
    /// when the ledger has none or rejected it.
    pub async fn posted(&self, posting_id: Uuid) -> Result<Option<(i64, String)>, MovementError> {
        let request = platform::grpc::outgoing(
            saldo_pb::PostingIdRequest {
                posting_id: posting_id.to_string(),
            },
            Some(&self.bearer()?),
            DEADLINE,
        );
        match self.saldo.clone().get_posting(request).await {
            Ok(posting) => {
                let posting = posting.into_inner();
                Ok((posting.status == PostingStatus::Posted as i32)
                    .then_some((posting.amount, posting.currency)))
            }
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(MovementError::Upstream("saldo service", s)),
        }
    }

    /// Posts (or replays) `posting_id`. An account that does not exist yet is
    /// [`MovementError::AccountNotReady`]; nothing was recorded by the ledger then.
    #[allow(clippy::too_many_arguments)]
    pub async fn post(
        &self,
        posting_id: Uuid,
        kind: &str,
        debit: Side,
        credit: Side,
        amount: Money,
        description: String,
        effective_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<Outcome, MovementError> {
        self.post_with_fee(
            posting_id,
            kind,
            debit,
            credit,
            amount,
            None,
            description,
            effective_at,
        )
        .await
    }

    /// [`Self::post`] with a fee leg (see [`Fee`]): one posting, all legs or none.
    #[allow(clippy::too_many_arguments)]
    pub async fn post_with_fee(
        &self,
        posting_id: Uuid,
        kind: &str,
        debit: Side,
        credit: Side,
        amount: Money,
        fee: Option<Fee>,
        description: String,
        effective_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<Outcome, MovementError> {
        let request = platform::grpc::outgoing(
            saldo_pb::PostRequest {
                posting_id: posting_id.to_string(),
                kind: kind.to_owned(),
                debit: Some(side(debit)),
                credit: Some(side(credit)),
                amount: amount.minor(),
                currency: amount.currency().to_string(),
                description,
                effective_at: effective_at.map(platform::time::to_proto),
                fee: fee.map(Fee::into_proto),
            },
            Some(&self.bearer()?),
            DEADLINE,
        );
        match self.saldo.clone().post(request).await {
            Ok(posting) => outcome(posting_id, &posting.into_inner()),
            Err(s) => Err(account_not_ready(s)),
        }
    }

    /// Places (or replays) hold `hold_id` on `card` for `credit`: the money stays on the card
    /// but cannot be spent until the hold is captured or released.
    pub async fn hold(
        &self,
        hold_id: Uuid,
        card: Uuid,
        credit: Side,
        amount: Money,
        description: String,
    ) -> Result<Outcome, MovementError> {
        let request = platform::grpc::outgoing(
            saldo_pb::HoldRequest {
                hold_id: hold_id.to_string(),
                debit: Some(side(Side::Card(card))),
                credit: Some(side(credit)),
                amount: amount.minor(),
                currency: amount.currency().to_string(),
                description,
            },
            Some(&self.bearer()?),
            DEADLINE,
        );
        match self.saldo.clone().hold(request).await {
            Ok(hold) => {
                let hold = hold.into_inner();
                if hold.status == "rejected" {
                    Ok(Outcome::Rejected(
                        Rejection::from_code(&hold.rejection_reason).ok_or_else(|| {
                            MovementError::Internal(anyhow::anyhow!(
                                "the ledger rejected hold {hold_id} with {:?}",
                                hold.rejection_reason
                            ))
                        })?,
                    ))
                } else {
                    Ok(Outcome::Posted)
                }
            }
            Err(s) => Err(account_not_ready(s)),
        }
    }

    /// Captures (or replays the capture of) hold `hold_id` for `amount`, with an optional fee
    /// leg; the rest of the hold is released. A hold that was released or captured otherwise
    /// is [`HoldSettled`].
    pub async fn capture(
        &self,
        hold_id: Uuid,
        amount: i64,
        fee: Option<Fee>,
        description: String,
    ) -> Result<Result<Outcome, HoldSettled>, MovementError> {
        let request = platform::grpc::outgoing(
            saldo_pb::CaptureHoldRequest {
                hold_id: hold_id.to_string(),
                amount,
                fee: fee.map(Fee::into_proto),
                description,
            },
            Some(&self.bearer()?),
            DEADLINE,
        );
        match self.saldo.clone().capture_hold(request).await {
            Ok(posting) => Ok(Ok(outcome(hold_id, &posting.into_inner())?)),
            Err(s) => hold_settled(s).map(Err),
        }
    }

    /// Releases (or replays the release of) hold `hold_id`; `reason` is voided, cancelled or
    /// expired. A captured hold is [`HoldSettled`].
    pub async fn release(
        &self,
        hold_id: Uuid,
        reason: &str,
    ) -> Result<Result<(), HoldSettled>, MovementError> {
        let request = platform::grpc::outgoing(
            saldo_pb::ReleaseHoldRequest {
                hold_id: hold_id.to_string(),
                reason: reason.to_owned(),
            },
            Some(&self.bearer()?),
            DEADLINE,
        );
        match self.saldo.clone().release_hold(request).await {
            Ok(_) => Ok(Ok(())),
            Err(s) => hold_settled(s).map(Err),
        }
    }
}

/// A posting's fee leg: `amount > 0` is taken out of what the credited side receives,
/// `amount < 0` paid back out of what the debited side pays (see the ledger's `Fee`).
#[derive(Clone, Debug)]
pub struct Fee {
    pub account: Side,
    pub amount: i64,
}

impl Fee {
    /// The platform's fee revenue (system account `fees` in the posting's currency).
    pub const REVENUE: &'static str = "fees";

    /// A fee into (or, negative, out of) the platform's revenue account.
    pub fn revenue(amount: i64) -> Option<Self> {
        (amount != 0).then(|| Self {
            account: Side::System(Self::REVENUE.to_owned()),
            amount,
        })
    }

    fn into_proto(self) -> saldo_pb::Fee {
        saldo_pb::Fee {
            account: Some(side(self.account)),
            amount: self.amount,
        }
    }
}

/// The ledger settled the hold otherwise (its reason code, e.g. HOLD_RELEASED), or refused
/// the capture's posting (CAPTURE_REJECTED: the card's account was closed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldSettled(pub String);

fn side(s: Side) -> saldo_pb::AccountRef {
    saldo_pb::AccountRef {
        target: Some(match s {
            Side::Card(id) => Target::CardId(id.to_string()),
            Side::System(purpose) => Target::System(purpose),
            Side::Merchant(id) => Target::MerchantId(id.to_string()),
        }),
    }
}

/// A posting as an outcome.
fn outcome(posting_id: Uuid, posting: &saldo_pb::Posting) -> Result<Outcome, MovementError> {
    if posting.status == PostingStatus::Posted as i32 {
        return Ok(Outcome::Posted);
    }
    let rejection = Rejection::from_proto(posting.rejection).ok_or_else(|| {
        MovementError::Internal(anyhow::anyhow!(
            "the ledger rejected posting {posting_id} without a known reason ({}, {:?})",
            posting.rejection,
            posting.rejection_reason
        ))
    })?;
    Ok(Outcome::Rejected(rejection))
}

/// An account the ledger does not have yet is [`MovementError::AccountNotReady`].
fn account_not_ready(s: tonic::Status) -> MovementError {
    if s.code() == tonic::Code::NotFound
        && platform::error::status_reason(&s).as_deref() == Some("ACCOUNT_NOT_FOUND")
    {
        MovementError::AccountNotReady
    } else {
        MovementError::Upstream("saldo service", s)
    }
}

/// FAILED_PRECONDITION of a hold call as [`HoldSettled`]; anything else an error.
fn hold_settled(s: tonic::Status) -> Result<HoldSettled, MovementError> {
    if s.code() == tonic::Code::FailedPrecondition
        && let Some(reason) = platform::error::status_reason(&s)
    {
        return Ok(HoldSettled(reason));
    }
    Err(MovementError::Upstream("saldo service", s))
}
