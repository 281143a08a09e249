//! The topup service (schema `topup_svc`): money entering the platform onto a card, as a
//! charge at a payment provider, booked in the ledger only on the provider's word. The
//! orchestration (idempotency, card checks, provider routing, callbacks, the status poller,
//! posting, recovery) is [`movement`]'s; this crate maps it to `payments.topup.v1` and serves
//! `payments.provider.v1` for the callbacks the gateway relays.

use movement::app::{Application, Config};
use movement::{Filter, Kind, Movement, MovementError, Movements, NewMovement};
use platform::card_data::CardNumber;
use platform::config::CommonConfig;
use platform::pagination::Page;
use proto::topup::v1 as pb;
use proto::topup::v1::topup_service_server::TopupServiceServer;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The database schema this service owns.
pub const SCHEMA: &str = "topup_svc";

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
            "b648461869021cbcad07f0e2f8ae002be9d52751e32b86f1a344f0e6f8d8a76c691d5c7eefc81b661061bf4a0ca2213f",
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
        Kind::Topup,
        &platform::ports::TOPUP.grpc_listen(),
        &platform::ports::TOPUP.admin_listen(),
    )
}

/// Applies the schema's migrations.
pub async fn migrate(config: &CommonConfig) -> anyhow::Result<()> {
    platform::process::migrate(config, &DATABASE).await
}

/// Builds the service.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    Application::build(Kind::Topup, config, &DATABASE).await
}

/// The gRPC routes of the service.
pub fn routes(app: &Application) -> tonic::service::Routes {
    tonic::service::Routes::new(TopupServiceServer::new(Handlers {
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
        pb::topup_stats_service_server::TopupStatsServiceServer::new(StatsHandlers {
            api: app.stats(),
            authenticator: app.movements().authenticator().clone(),
        }),
    )
}

movement::stats_service!(
    StatsHandlers,
    proto::topup::v1::topup_stats_service_server::TopupStatsService
);

/// Implements `TopupService`.
#[derive(Clone)]
pub struct Handlers {
    movements: Movements,
}

fn to_proto(m: Movement) -> pb::Topup {
    pb::Topup {
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
impl pb::topup_service_server::TopupService for Handlers {
    async fn create_topup(
        &self,
        request: Request<pb::CreateTopupRequest>,
    ) -> Result<Response<pb::Topup>, Status> {
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

    async fn get_topup(
        &self,
        request: Request<pb::TopupIdRequest>,
    ) -> Result<Response<pb::Topup>, Status> {
        let caller = self.movements.authenticator().require(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?.ok_or_else(|| {
            MovementError::from(platform::FieldViolation::new("id", "is required"))
        })?;
        Ok(Response::new(to_proto(
            self.movements.get(&caller, id).await?,
        )))
    }

    async fn list_topups(
        &self,
        request: Request<pb::ListTopupsRequest>,
    ) -> Result<Response<pb::ListTopupsResponse>, Status> {
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
        Ok(Response::new(pb::ListTopupsResponse {
            topups: rows.into_iter().map(to_proto).collect(),
            page_info: Some(page.info(total)),
        }))
    }
}
