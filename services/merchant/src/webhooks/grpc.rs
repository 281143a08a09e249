//! `WebhookService`: the proto ⇄ domain mapping of [`super::endpoints::Webhooks`].

use platform::FieldViolation;
use platform::auth::Principal;
use platform::time::{to_proto, to_proto_opt};
use proto::merchant::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::endpoints::{
    AttemptRow, DeliveryRow, EndpointChange, EndpointRow, EventFilter, EventRow, Webhooks,
};
use crate::error::MerchantError;

fn parse_uuid(field: &str, raw: &str) -> Result<Uuid, MerchantError> {
    Ok(platform::parse_uuid(field, raw)?)
}

fn endpoint_to_proto(e: EndpointRow) -> pb::WebhookEndpoint {
    pb::WebhookEndpoint {
        id: e.id.to_string(),
        merchant_id: e.merchant_id.to_string(),
        url: e.url,
        description: e.description,
        event_types: e.event_types,
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.unwrap_or_default(),
        consecutive_failures: e.consecutive_failures,
        created_at: Some(to_proto(e.created_at)),
        updated_at: Some(to_proto(e.updated_at)),
        previous_secret_expires_at: to_proto_opt(e.previous_secret_expires_at),
    }
}

fn event_to_proto(e: EventRow) -> pb::WebhookEvent {
    pb::WebhookEvent {
        id: e.id.to_string(),
        merchant_id: e.merchant_id.to_string(),
        r#type: e.event_type,
        api_version: e.api_version,
        data_json: e.data.to_string(),
        created_at: Some(to_proto(e.created_at)),
    }
}

fn attempt_to_proto(a: AttemptRow) -> pb::WebhookAttempt {
    pb::WebhookAttempt {
        attempted_at: Some(to_proto(a.attempted_at)),
        status_code: a.status_code,
        latency_ms: a.latency_ms,
        error: a.error.unwrap_or_default(),
        succeeded: a.succeeded,
    }
}

fn delivery_to_proto(d: DeliveryRow) -> pb::WebhookDelivery {
    pb::WebhookDelivery {
        id: d.id.to_string(),
        event_id: d.event_id.to_string(),
        endpoint_id: d.endpoint_id.to_string(),
        status: d.status,
        manual: d.manual,
        attempts: d.attempts,
        next_attempt_at: Some(to_proto(d.next_attempt_at)),
        created_at: Some(to_proto(d.created_at)),
        completed_at: to_proto_opt(d.completed_at),
        attempt_log: d.attempt_log.into_iter().map(attempt_to_proto).collect(),
    }
}

/// Implements `WebhookService`.
#[derive(Clone)]
pub struct WebhookHandlers {
    webhooks: Webhooks,
    merchants: crate::service::Merchants,
}

impl WebhookHandlers {
    pub fn new(webhooks: Webhooks, merchants: crate::service::Merchants) -> Self {
        Self {
            webhooks,
            merchants,
        }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        Ok(self.merchants.authenticator().require(request).await?)
    }
}

/// The merchant and endpoint ids of a request.
fn ids(merchant_id: &str, endpoint_id: &str) -> Result<(Uuid, Uuid), MerchantError> {
    Ok((
        parse_uuid("merchant_id", merchant_id)?,
        parse_uuid("endpoint_id", endpoint_id)?,
    ))
}

#[tonic::async_trait]
impl pb::webhook_service_server::WebhookService for WebhookHandlers {
    async fn create_webhook_endpoint(
        &self,
        request: Request<pb::CreateWebhookEndpointRequest>,
    ) -> Result<Response<pb::CreatedWebhookEndpoint>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let merchant_id = parse_uuid("merchant_id", &r.merchant_id)?;
        let (endpoint, secret) = self
            .webhooks
            .create(&caller, merchant_id, &r.url, &r.event_types, &r.description)
            .await?;
        Ok(Response::new(pb::CreatedWebhookEndpoint {
            endpoint: Some(endpoint_to_proto(endpoint)),
            secret,
        }))
    }

    async fn list_webhook_endpoints(
        &self,
        request: Request<pb::MerchantIdRequest>,
    ) -> Result<Response<pb::ListWebhookEndpointsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let merchant_id = parse_uuid("id", &request.get_ref().id)?;
        let endpoints = self.webhooks.list(&caller, merchant_id).await?;
        Ok(Response::new(pb::ListWebhookEndpointsResponse {
            endpoints: endpoints.into_iter().map(endpoint_to_proto).collect(),
        }))
    }

    async fn get_webhook_endpoint(
        &self,
        request: Request<pb::WebhookEndpointIdRequest>,
    ) -> Result<Response<pb::WebhookEndpoint>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let (merchant_id, endpoint_id) = ids(&r.merchant_id, &r.endpoint_id)?;
        let endpoint = self.webhooks.get(&caller, merchant_id, endpoint_id).await?;
        Ok(Response::new(endpoint_to_proto(endpoint)))
    }

    async fn update_webhook_endpoint(
        &self,
        request: Request<pb::UpdateWebhookEndpointRequest>,
    ) -> Result<Response<pb::WebhookEndpoint>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let (merchant_id, endpoint_id) = ids(&r.merchant_id, &r.endpoint_id)?;
        let change = EndpointChange {
            url: r.url,
            event_types: r.set_event_types.then_some(r.event_types),
            description: r.description,
            enabled: r.enabled,
        };
        let endpoint = self
            .webhooks
            .update(&caller, merchant_id, endpoint_id, change)
            .await?;
        Ok(Response::new(endpoint_to_proto(endpoint)))
    }

    async fn rotate_webhook_secret(
        &self,
        request: Request<pb::RotateWebhookSecretRequest>,
    ) -> Result<Response<pb::CreatedWebhookEndpoint>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let (merchant_id, endpoint_id) = ids(&r.merchant_id, &r.endpoint_id)?;
        let (endpoint, secret) = self
            .webhooks
            .rotate(&caller, merchant_id, endpoint_id, r.overlap_seconds)
            .await?;
        Ok(Response::new(pb::CreatedWebhookEndpoint {
            endpoint: Some(endpoint_to_proto(endpoint)),
            secret,
        }))
    }

    async fn delete_webhook_endpoint(
        &self,
        request: Request<pb::WebhookEndpointIdRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let (merchant_id, endpoint_id) = ids(&r.merchant_id, &r.endpoint_id)?;
        self.webhooks
            .delete(&caller, merchant_id, endpoint_id)
            .await?;
        Ok(Response::new(pb::DeleteResponse { deleted: true }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let merchant_id = parse_uuid("merchant_id", &r.merchant_id)?;
        let time = |field: &str, ts: Option<prost_types::Timestamp>| match ts {
            None => Ok(None),
            Some(ts) => platform::time::from_proto(&ts)
                .map(Some)
                .ok_or_else(|| MerchantError::from(FieldViolation::new(field, "is not a time"))),
        };
        let filter = EventFilter {
            event_type: Some(r.r#type).filter(|t| !t.is_empty()),
            from: time("created_from", r.created_from)?,
            to: time("created_to", r.created_to)?,
            cursor: Some(r.cursor).filter(|c| !c.is_empty()),
            limit: if r.limit == 0 { 20 } else { i64::from(r.limit) },
        };
        let (events, next) = self
            .webhooks
            .list_events(&caller, merchant_id, filter)
            .await?;
        Ok(Response::new(pb::ListEventsResponse {
            events: events.into_iter().map(event_to_proto).collect(),
            next_cursor: next.unwrap_or_default(),
        }))
    }

    async fn get_event(
        &self,
        request: Request<pb::EventIdRequest>,
    ) -> Result<Response<pb::WebhookEvent>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let merchant_id = parse_uuid("merchant_id", &r.merchant_id)?;
        let event_id = parse_uuid("event_id", &r.event_id)?;
        let event = self
            .webhooks
            .get_event(&caller, merchant_id, event_id)
            .await?;
        Ok(Response::new(event_to_proto(event)))
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::EventIdRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let merchant_id = parse_uuid("merchant_id", &r.merchant_id)?;
        let event_id = parse_uuid("event_id", &r.event_id)?;
        let deliveries = self
            .webhooks
            .deliveries(&caller, merchant_id, event_id)
            .await?;
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries: deliveries.into_iter().map(delivery_to_proto).collect(),
        }))
    }

    async fn resend_event(
        &self,
        request: Request<pb::ResendEventRequest>,
    ) -> Result<Response<pb::WebhookDelivery>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let (merchant_id, endpoint_id) = ids(&r.merchant_id, &r.endpoint_id)?;
        let event_id = parse_uuid("event_id", &r.event_id)?;
        let delivery = self
            .webhooks
            .resend(&caller, merchant_id, event_id, endpoint_id)
            .await?;
        Ok(Response::new(delivery_to_proto(delivery)))
    }
}
