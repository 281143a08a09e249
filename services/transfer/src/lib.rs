//! The transfer service (schema `transfer_svc`): money from one card to another of the same
//! currency, through the ledger. The orchestration (idempotency, card checks, posting,
//! recovery) is [`movement`]'s; this crate maps it to `payments.transfer.v1`.

use movement::app::{Application, Config};
use movement::{Filter, Kind, Movement, MovementError, Movements, NewMovement};
use platform::card_data::CardNumber;
use platform::config::CommonConfig;
use platform::pagination::Page;
use proto::transfer::v1 as pb;
use proto::transfer::v1::transfer_service_server::TransferServiceServer;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// The database schema this service owns.
pub const SCHEMA: &str = "transfer_svc";

/// The service's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The schema: the service's migrations and the shared tables it uses (outbox, processed
/// events, statistics rollup), with the released checksums of the migrations those tables moved
/// out of.
pub static DATABASE: platform::db::Schema = platform::db::Schema {
    name: SCHEMA,
    migrator: &MIGRATOR,
    shared: movement::app::SHARED_TABLES,
    rewritten: &[
        (
            1,
            "1645748496d2a60fbab78ed52c1c2d1bcd6d2f5b369fce6f269b8d5371e9a32d11fd8e4400fdf1d3b9a038440166d596",
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
        Kind::Transfer,
        &platform::ports::TRANSFER.grpc_listen(),
        &platform::ports::TRANSFER.admin_listen(),
    )
}

/// Applies the schema's migrations.
pub async fn migrate(config: &CommonConfig) -> anyhow::Result<()> {
    platform::process::migrate(config, &DATABASE).await
}

/// Builds the service.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    Application::build(Kind::Transfer, config, &DATABASE).await
}

/// The gRPC routes of the service.
pub fn routes(app: &Application) -> tonic::service::Routes {
    tonic::service::Routes::new(TransferServiceServer::new(Handlers {
        movements: app.movements(),
    }))
    .add_service(
        pb::transfer_stats_service_server::TransferStatsServiceServer::new(StatsHandlers {
            api: app.stats(),
            authenticator: app.movements().authenticator().clone(),
        }),
    )
}

movement::stats_service!(
    StatsHandlers,
    proto::transfer::v1::transfer_stats_service_server::TransferStatsService
);

/// Implements `TransferService`.
#[derive(Clone)]
pub struct Handlers {
    movements: Movements,
}

fn to_proto(m: Movement) -> pb::Transfer {
    pb::Transfer {
        id: m.id.to_string(),
        from_card_id: m.card_id.to_string(),
        masked_from_card_number: m.masked_card_number,
        from_user_id: m.user_id.to_string(),
        to_card_id: m.to_card_id.map(|id| id.to_string()).unwrap_or_default(),
        masked_to_card_number: m.masked_to_card_number.unwrap_or_default(),
        to_user_id: m.to_user_id.map(|id| id.to_string()).unwrap_or_default(),
        amount: m.amount,
        currency: m.currency,
        status: m.status.to_proto(),
        failure_reason: m.failure_reason.unwrap_or_default(),
        created_at: Some(platform::time::to_proto(m.created_at)),
        completed_at: platform::time::to_proto_opt(m.completed_at),
    }
}

fn parse_uuid(field: &str, raw: &str) -> Result<Option<Uuid>, MovementError> {
    Ok(platform::parse_optional_uuid(field, raw)?)
}

#[tonic::async_trait]
impl pb::transfer_service_server::TransferService for Handlers {
    async fn create_transfer(
        &self,
        request: Request<pb::CreateTransferRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let caller = self.movements.authenticator().require(&request).await?;
        let r = request.into_inner();
        let new = NewMovement {
            idempotency_key: r.idempotency_key,
            card_number: CardNumber::new(r.from_card_number.trim()),
            to_card_number: Some(CardNumber::new(r.to_card_number.trim())),
            method: None,
            amount: r.amount,
            effective_at: platform::time::effective_at(&caller, r.effective_at.as_ref())
                .map_err(movement::MovementError::from)?,
        };
        Ok(Response::new(to_proto(
            self.movements.create(&caller, new).await?,
        )))
    }

    async fn get_transfer(
        &self,
        request: Request<pb::TransferIdRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let caller = self.movements.authenticator().require(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?.ok_or_else(|| {
            MovementError::from(platform::FieldViolation::new("id", "is required"))
        })?;
        Ok(Response::new(to_proto(
            self.movements.get(&caller, id).await?,
        )))
    }

    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<pb::ListTransfersResponse>, Status> {
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
            outgoing: match pb::Direction::try_from(r.direction) {
                Ok(pb::Direction::Outgoing) => Some(true),
                Ok(pb::Direction::Incoming) => Some(false),
                _ => None,
            },
            method: None,
        };
        let (rows, total) = self.movements.list(&caller, filter, page).await?;
        Ok(Response::new(pb::ListTransfersResponse {
            transfers: rows.into_iter().map(to_proto).collect(),
            page_info: Some(page.info(total)),
        }))
    }
}
