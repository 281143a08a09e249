//! The gRPC layer of the transaction service.

use platform::pagination::Page;
use proto::transaction::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::TransactionError;
use crate::payments::authorization::{NewCapture, Release};
use crate::payments::{NewPayment, NewRefund, PaymentFilter, PaymentRow, Payments, RefundRow};

fn parse_uuid(field: &str, raw: &str) -> Result<Uuid, TransactionError> {
    Ok(platform::parse_uuid(field, raw)?)
}

fn optional_uuid(field: &str, raw: &str) -> Result<Option<Uuid>, TransactionError> {
    Ok(platform::parse_optional_uuid(field, raw)?)
}

fn payment_to_proto(p: PaymentRow) -> pb::Payment {
    let (state, captured) = (p.state().to_owned(), p.captured_amount());
    pb::Payment {
        id: p.id.to_string(),
        merchant_id: p.merchant_id.to_string(),
        merchant_name: p.merchant_name,
        api_key_id: p.api_key_id.to_string(),
        card_id: p.card_id.to_string(),
        masked_card_number: p.masked_card_number,
        user_id: p.user_id.to_string(),
        amount: p.amount,
        currency: p.currency,
        method: p.method,
        description: p.description,
        status: p.status.to_proto(),
        failure_reason: p.failure_reason.unwrap_or_default(),
        refunded_amount: p.refunded_amount,
        created_at: Some(platform::time::to_proto(p.created_at)),
        completed_at: platform::time::to_proto_opt(p.completed_at),
        state,
        captured_amount: captured,
        net_amount: captured - p.fee_amount,
        fee_amount: p.fee_amount,
        capture_method: p.capture_method,
        expires_at: platform::time::to_proto_opt(p.expires_at),
        settled_at: platform::time::to_proto_opt(p.settled_at),
    }
}

fn refund_to_proto(r: RefundRow) -> pb::Refund {
    pb::Refund {
        id: r.id.to_string(),
        payment_id: r.payment_id.to_string(),
        merchant_id: r.merchant_id.to_string(),
        card_id: r.card_id.to_string(),
        user_id: r.user_id.to_string(),
        amount: r.amount,
        currency: r.currency,
        reason: r.reason,
        status: r.status.to_proto(),
        failure_reason: r.failure_reason.unwrap_or_default(),
        created_at: Some(platform::time::to_proto(r.created_at)),
        completed_at: platform::time::to_proto_opt(r.completed_at),
        fee_returned: r.fee_returned,
    }
}

/// Implements `TransactionService`.
#[derive(Clone)]
pub struct Handlers {
    payments: Payments,
}

impl Handlers {
    pub fn new(payments: Payments) -> Self {
        Self { payments }
    }

    /// A backdated create (imports, demo data) carries, beside the merchant's API key, a
    /// bearer token holding `saldo.backdate`.
    async fn effective_at<T>(
        &self,
        request: &Request<T>,
        ts: Option<&prost_types::Timestamp>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, Status> {
        if ts.is_none() {
            return Ok(None);
        }
        let principal = self
            .payments
            .authenticator()
            .require(request)
            .await
            .map_err(TransactionError::from)?;
        Ok(platform::time::effective_at(&principal, ts)
            .map_err(movement::MovementError::from)
            .map_err(TransactionError::from)?)
    }
}

impl Handlers {
    async fn release(
        &self,
        request: Request<pb::PaymentActionRequest>,
        how: Release,
    ) -> Result<Response<pb::Payment>, Status> {
        let caller = self
            .payments
            .caller(&request, &request.get_ref().api_key)
            .await?;
        let id = parse_uuid("payment_id", &request.get_ref().payment_id)?;
        Ok(Response::new(payment_to_proto(
            self.payments.release_payment(&caller, id, how).await?,
        )))
    }
}

#[tonic::async_trait]
impl pb::transaction_service_server::TransactionService for Handlers {
    async fn create_payment(
        &self,
        request: Request<pb::CreatePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let caller = self
            .payments
            .caller(&request, &request.get_ref().api_key)
            .await?;
        let effective_at = self
            .effective_at(&request, request.get_ref().effective_at.as_ref())
            .await?;
        let r = request.into_inner();
        let input = NewPayment {
            idempotency_key: r.idempotency_key,
            card_number: platform::card_data::CardNumber::new(r.card_number.trim()),
            cvv: platform::card_data::Cvv::new(r.cvv.trim()),
            amount: r.amount,
            method: r.method.trim().to_lowercase(),
            description: r.description.trim().to_owned(),
            effective_at,
            capture: match r.capture_method.trim() {
                "" | "automatic" => true,
                "manual" => false,
                _ => {
                    return Err(TransactionError::from(platform::FieldViolation::new(
                        "capture_method",
                        "must be automatic or manual",
                    ))
                    .into());
                }
            },
        };
        Ok(Response::new(payment_to_proto(
            self.payments.create_payment(&caller, input).await?,
        )))
    }

    async fn capture_payment(
        &self,
        request: Request<pb::CapturePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let caller = self
            .payments
            .caller(&request, &request.get_ref().api_key)
            .await?;
        let r = request.into_inner();
        let input = NewCapture {
            payment_id: parse_uuid("payment_id", &r.payment_id)?,
            amount: (r.amount != 0).then_some(r.amount),
            idempotency_key: r.idempotency_key,
        };
        Ok(Response::new(payment_to_proto(
            self.payments.capture_payment(&caller, input).await?,
        )))
    }

    async fn void_payment(
        &self,
        request: Request<pb::PaymentActionRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        self.release(request, Release::Void).await
    }

    async fn cancel_payment(
        &self,
        request: Request<pb::PaymentActionRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        self.release(request, Release::Cancel).await
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let caller = self
            .payments
            .caller(&request, &request.get_ref().api_key)
            .await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        Ok(Response::new(payment_to_proto(
            self.payments.get_payment(&caller, id).await?,
        )))
    }

    async fn list_payments(
        &self,
        request: Request<pb::ListPaymentsRequest>,
    ) -> Result<Response<pb::ListPaymentsResponse>, Status> {
        let caller = self
            .payments
            .caller(&request, &request.get_ref().api_key)
            .await?;
        let r = request.into_inner();
        let page = Page::from_proto(r.page.as_ref()).map_err(TransactionError::from)?;
        let (from, to) = platform::time::range_from_proto(r.from.as_ref(), r.to.as_ref())
            .map_err(TransactionError::from)?;
        let filter = PaymentFilter {
            status: movement::Status::from_proto_filter(r.status),
            from,
            to,
            card_id: optional_uuid("card_id", &r.card_id)?,
            merchant_id: optional_uuid("merchant_id", &r.merchant_id)?,
            api_key_id: optional_uuid("api_key_id", &r.api_key_id)?,
            user_id: optional_uuid("user_id", &r.user_id)?,
            method: match r.method.trim() {
                "" => None,
                m => Some(m.to_lowercase()),
            },
        };
        let (payments, total) = self.payments.list_payments(&caller, filter, page).await?;
        Ok(Response::new(pb::ListPaymentsResponse {
            payments: payments.into_iter().map(payment_to_proto).collect(),
            page_info: Some(page.info(total)),
        }))
    }

    async fn create_refund(
        &self,
        request: Request<pb::CreateRefundRequest>,
    ) -> Result<Response<pb::Refund>, Status> {
        let caller = self
            .payments
            .caller(&request, &request.get_ref().api_key)
            .await?;
        let effective_at = self
            .effective_at(&request, request.get_ref().effective_at.as_ref())
            .await?;
        let r = request.into_inner();
        let input = NewRefund {
            idempotency_key: r.idempotency_key,
            payment_id: parse_uuid("payment_id", &r.payment_id)?,
            amount: r.amount,
            reason: r.reason,
            effective_at,
        };
        Ok(Response::new(refund_to_proto(
            self.payments.create_refund(&caller, input).await?,
        )))
    }

    async fn get_refund(
        &self,
        request: Request<pb::GetRefundRequest>,
    ) -> Result<Response<pb::Refund>, Status> {
        let caller = self
            .payments
            .caller(&request, &request.get_ref().api_key)
            .await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        Ok(Response::new(refund_to_proto(
            self.payments.get_refund(&caller, id).await?,
        )))
    }

    async fn list_refunds(
        &self,
        request: Request<pb::ListRefundsRequest>,
    ) -> Result<Response<pb::ListRefundsResponse>, Status> {
        let caller = self
            .payments
            .caller(&request, &request.get_ref().api_key)
            .await?;
        let r = request.into_inner();
        let page = Page::from_proto(r.page.as_ref()).map_err(TransactionError::from)?;
        let (refunds, total) = self
            .payments
            .list_refunds(
                &caller,
                optional_uuid("payment_id", &r.payment_id)?,
                movement::Status::from_proto_filter(r.status),
                page,
            )
            .await?;
        Ok(Response::new(pb::ListRefundsResponse {
            refunds: refunds.into_iter().map(refund_to_proto).collect(),
            page_info: Some(page.info(total)),
        }))
    }
}
