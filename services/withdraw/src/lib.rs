//! The withdraw service (schema `withdraw_svc`): money leaving the platform from a card to a withdraw method, through the ledger. The orchestration
//! (idempotency, card checks, posting, recovery) is [`movement`]'s; this crate maps it to
//! `payments.withdraw.v1`.

use movement::app::{Application, Config};
use movement::{Filter, Kind, Movement, MovementError, Movements, NewMovement};
use platform::card_data::CardNumber;
use platform::config::CommonConfig;
use platform::pagination::Page;
use proto::withdraw::v1 as pb;
use proto::withdraw::v1::withdraw_service_server::WithdrawServiceServer;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The database schema this service owns.
pub const SCHEMA: &str = "withdraw_svc";

/// The service's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The schema: the service's migrations and the shared tables it uses (outbox, processed
/// events, statistics rollup), with the released checksums of the migrations those tables moved
/// out of.
pub static DATABASE: platform::db::Schema = platform::db::Schema {
    name: SCHEMA,
    migrator: &MIGRATOR,
    shared: movement::app::PROVIDER_BACKED_TABLES,
    rewritten: &[
        (
            1,
            "824f59daf64f82bab7af0fbd3f8c79eb7b37f016a13b554d721937b6795fcb9d5270b5d7b907418a4ddde18046dbb09f",
        ),
        (
            3,
            "cf3fa21b316721a40df0ec4b9f918cb24d7b7c5cf55aa20852d17dd154c0d66ad98935db54ec4347886fe5fa3ddf406b",
        ),
        (
            4,
            "588527b568fcdb419b9bce3415e1fdd31406cafcc9afac8b349abf19cad3443776e46c8d758de33a89245f36a04e647e",
        ),
    ],
};

/// Reads the configuration from the environment.
pub fn config() -> anyhow::Result<Config> {
    Config::from_env(
        Kind::Withdraw,
        &platform::ports::WITHDRAW.grpc_listen(),
        &platform::ports::WITHDRAW.admin_listen(),
    )
}

/// Applies the schema's migrations.
pub async fn migrate(config: &CommonConfig) -> anyhow::Result<()> {
    platform::process::migrate(config, &DATABASE).await
}

/// Builds the service.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    Application::build(Kind::Withdraw, config, &DATABASE).await
}

/// The gRPC routes of the service.
pub fn routes(app: &Application) -> tonic::service::Routes {
    tonic::service::Routes::new(WithdrawServiceServer::new(Handlers {
        movements: app.movements(),
    }))
    .add_service(
        proto::provider::v1::provider_callback_service_server::ProviderCallbackServiceServer::new(
            movement::provider::CallbackHandlers::new(app.movements()),
        ),
    )
    .add_service(
        proto::provider::v1::reconciliation_service_server::ReconciliationServiceServer::new(
            movement::provider::ReconciliationHandlers::new(app.movements()),
        ),
    )
    .add_service(
        pb::withdraw_stats_service_server::WithdrawStatsServiceServer::new(StatsHandlers {
            api: app.stats(),
            authenticator: app.movements().authenticator().clone(),
        }),
    )
}

movement::stats_service!(
    StatsHandlers,
    proto::withdraw::v1::withdraw_stats_service_server::WithdrawStatsService
);

/// Implements `WithdrawService`.
#[derive(Clone)]
pub struct Handlers {
    movements: Movements,
}

fn to_proto(m: Movement) -> pb::Withdraw {
    pb::Withdraw {
        id: m.id.to_string(),
        card_id: m.card_id.to_string(),
        masked_card_number: m.masked_card_number,
        user_id: m.user_id.to_string(),
        method: m.method.unwrap_or_default(),
        amount: m.amount,
        currency: m.currency,
        status: m.status.to_proto(),
        failure_reason: m.failure_reason.unwrap_or_default(),
        created_at: Some(platform::time::to_proto(m.created_at)),
        completed_at: platform::time::to_proto_opt(m.completed_at),
        provider: m.provider.unwrap_or_default(),
        provider_reference: m.provider_reference.unwrap_or_default(),
        provider_failure_code: m.provider_failure_code.unwrap_or_default(),
    }
}

fn parse_uuid(field: &str, raw: &str) -> Result<Option<Uuid>, MovementError> {
    Ok(platform::parse_optional_uuid(field, raw)?)
}

#[tonic::async_trait]
impl pb::withdraw_service_server::WithdrawService for Handlers {
    async fn create_withdraw(
        &self,
        request: Request<pb::CreateWithdrawRequest>,
    ) -> Result<Response<pb::Withdraw>, Status> {
        let caller = self.movements.authenticator().require(&request).await?;
        let r = request.into_inner();
        let new = NewMovement {
            idempotency_key: r.idempotency_key,
            card_number: CardNumber::new(r.card_number.trim()),
            to_card_number: None,
            method: Some(r.method.trim().to_lowercase()),
            amount: r.amount,
            effective_at: platform::time::effective_at(&caller, r.effective_at.as_ref())
                .map_err(movement::MovementError::from)?,
        };
        Ok(Response::new(to_proto(
            self.movements.create(&caller, new).await?,
        )))
    }

    async fn get_withdraw(
        &self,
        request: Request<pb::WithdrawIdRequest>,
    ) -> Result<Response<pb::Withdraw>, Status> {
        let caller = self.movements.authenticator().require(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?.ok_or_else(|| {
            MovementError::from(platform::FieldViolation::new("id", "is required"))
        })?;
        Ok(Response::new(to_proto(
            self.movements.get(&caller, id).await?,
        )))
    }

    async fn list_withdraws(
        &self,
        request: Request<pb::ListWithdrawsRequest>,
    ) -> Result<Response<pb::ListWithdrawsResponse>, Status> {
        let caller = self.movements.authenticator().require(&request).await?;
        let r = request.into_inner();
        let page = Page::from_proto(r.page.as_ref()).map_err(MovementError::from)?;
        let (from, to) = platform::time::range_from_proto(r.from.as_ref(), r.to.as_ref())
            .map_err(MovementError::from)?;
        let filter = Filter {
            status: movement::Status::from_proto_filter(r.status),
            from,
            to,
            card_id: parse_uuid("card_id", &r.card_id)?,
            user_id: parse_uuid("user_id", &r.user_id)?,
            outgoing: None,
            method: (!r.method.is_empty()).then(|| r.method.trim().to_lowercase()),
        };
        let (rows, total) = self.movements.list(&caller, filter, page).await?;
        Ok(Response::new(pb::ListWithdrawsResponse {
            withdraws: rows.into_iter().map(to_proto).collect(),
            page_info: Some(page.info(total)),
        }))
    }
}
