//! The gRPC layer of the merchant service: `MerchantService` and `MerchantDocumentService`.
//!
//! Over 400 lines on purpose: two gRPC services' proto ⇄ domain mapping, one handler per
//! RPC, each a few lines; split, the mapping helpers would be shared across files.

use chrono::Utc;
use platform::FieldViolation;
use platform::auth::Principal;
use platform::pagination::{LifecycleFilter, Page};
use proto::common::v1::BulkResult;
use proto::merchant::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::documents::{DocumentRow, DocumentStatus, Documents};
use crate::error::MerchantError;
use crate::pricing::{NewPlan, PlanRow};
use crate::service::{
    ApiKeyRow, KeyStatus, MerchantChange, MerchantFilter, MerchantRow, MerchantStatus, Merchants,
    NewMerchant,
};

fn parse_uuid(field: &str, raw: &str) -> Result<Uuid, MerchantError> {
    Ok(platform::parse_uuid(field, raw)?)
}

pub fn status_to_proto(status: MerchantStatus) -> pb::MerchantStatus {
    match status {
        MerchantStatus::Pending => pb::MerchantStatus::Pending,
        MerchantStatus::Active => pb::MerchantStatus::Active,
        MerchantStatus::Rejected => pb::MerchantStatus::Rejected,
        MerchantStatus::Inactive => pb::MerchantStatus::Inactive,
    }
}

fn status_from_proto(value: i32) -> Option<MerchantStatus> {
    match pb::MerchantStatus::try_from(value) {
        Ok(pb::MerchantStatus::Pending) => Some(MerchantStatus::Pending),
        Ok(pb::MerchantStatus::Active) => Some(MerchantStatus::Active),
        Ok(pb::MerchantStatus::Rejected) => Some(MerchantStatus::Rejected),
        Ok(pb::MerchantStatus::Inactive) => Some(MerchantStatus::Inactive),
        _ => None,
    }
}

fn document_status_from_proto(value: i32) -> Option<DocumentStatus> {
    match pb::DocumentStatus::try_from(value) {
        Ok(pb::DocumentStatus::Pending) => Some(DocumentStatus::Pending),
        Ok(pb::DocumentStatus::Approved) => Some(DocumentStatus::Approved),
        Ok(pb::DocumentStatus::Rejected) => Some(DocumentStatus::Rejected),
        _ => None,
    }
}

pub fn merchant_to_proto(m: MerchantRow) -> pb::Merchant {
    pb::Merchant {
        id: m.id.to_string(),
        user_id: m.user_id.to_string(),
        name: m.name,
        description: m.description,
        website: m.website,
        currency: m.currency,
        status: status_to_proto(m.status) as i32,
        status_reason: m.status_reason.unwrap_or_default(),
        created_at: Some(platform::time::to_proto(m.created_at)),
        updated_at: Some(platform::time::to_proto(m.updated_at)),
        deleted_at: platform::time::to_proto_opt(m.deleted_at),
    }
}

fn key_to_proto(k: ApiKeyRow) -> pb::ApiKey {
    let status = match k.status(Utc::now()) {
        KeyStatus::Active => pb::ApiKeyStatus::Active,
        KeyStatus::Expiring => pb::ApiKeyStatus::Expiring,
        KeyStatus::Expired => pb::ApiKeyStatus::Expired,
        KeyStatus::Revoked => pb::ApiKeyStatus::Revoked,
    };
    pb::ApiKey {
        id: k.id.to_string(),
        merchant_id: k.merchant_id.to_string(),
        prefix: k.prefix,
        status: status as i32,
        created_at: Some(platform::time::to_proto(k.created_at)),
        expires_at: platform::time::to_proto_opt(k.expires_at),
        revoked_at: platform::time::to_proto_opt(k.revoked_at),
        replaces_key_id: k
            .replaces_key_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    }
}

fn document_to_proto(d: DocumentRow) -> pb::MerchantDocument {
    let status = match d.status {
        DocumentStatus::Pending => pb::DocumentStatus::Pending,
        DocumentStatus::Approved => pb::DocumentStatus::Approved,
        DocumentStatus::Rejected => pb::DocumentStatus::Rejected,
    };
    pb::MerchantDocument {
        id: d.id.to_string(),
        merchant_id: d.merchant_id.to_string(),
        document_type: d.document_type,
        document_url: d.document_url,
        status: status as i32,
        note: d.note.unwrap_or_default(),
        reviewed_by: d.reviewed_by.map(|id| id.to_string()).unwrap_or_default(),
        reviewed_at: platform::time::to_proto_opt(d.reviewed_at),
        created_at: Some(platform::time::to_proto(d.created_at)),
        updated_at: Some(platform::time::to_proto(d.updated_at)),
        deleted_at: platform::time::to_proto_opt(d.deleted_at),
    }
}

/// Implements `MerchantService`.
#[derive(Clone)]
pub struct MerchantHandlers {
    merchants: Merchants,
}

impl MerchantHandlers {
    pub fn new(merchants: Merchants) -> Self {
        Self { merchants }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        Ok(self.merchants.authenticator().require(request).await?)
    }
}

#[tonic::async_trait]
impl pb::merchant_service_server::MerchantService for MerchantHandlers {
    async fn apply_merchant(
        &self,
        request: Request<pb::ApplyMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let user_id = match r.user_id.trim() {
            "" => None,
            raw => Some(parse_uuid("user_id", raw)?),
        };
        let input = NewMerchant {
            user_id,
            name: r.name,
            description: r.description,
            website: r.website,
            currency: r.currency.trim().to_uppercase(),
        };
        Ok(Response::new(merchant_to_proto(
            self.merchants.apply(&caller, input).await?,
        )))
    }

    async fn update_merchant(
        &self,
        request: Request<pb::UpdateMerchantRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let id = parse_uuid("id", &r.id)?;
        let change = MerchantChange {
            name: r.name,
            description: r.description,
            website: r.website,
        };
        Ok(Response::new(merchant_to_proto(
            self.merchants.update(&caller, id, change).await?,
        )))
    }

    async fn get_merchant(
        &self,
        request: Request<pb::MerchantIdRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        Ok(Response::new(merchant_to_proto(
            self.merchants.get(&caller, id).await?,
        )))
    }

    async fn list_merchants(
        &self,
        request: Request<pb::ListMerchantsRequest>,
    ) -> Result<Response<pb::ListMerchantsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let page = Page::from_proto(r.page.as_ref()).map_err(MerchantError::from)?;
        let owner = match r.user_id.trim() {
            "*" => None,
            "" if caller.has(crate::service::MERCHANTS_READ) => None,
            "" => Some(caller.user_id().ok_or_else(|| {
                MerchantError::from(FieldViolation::new("user_id", "is required for services"))
            })?),
            raw => Some(parse_uuid("user_id", raw)?),
        };
        let filter = MerchantFilter {
            owner,
            status: status_from_proto(r.status),
            search: r.search,
            lifecycle: LifecycleFilter::from_proto(r.lifecycle),
        };
        let (merchants, total) = self.merchants.list(&caller, filter, page).await?;
        Ok(Response::new(pb::ListMerchantsResponse {
            merchants: merchants.into_iter().map(merchant_to_proto).collect(),
            page_info: Some(page.info(total)),
        }))
    }

    async fn update_merchant_status(
        &self,
        request: Request<pb::UpdateMerchantStatusRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let id = parse_uuid("id", &r.id)?;
        let status = match status_from_proto(r.status) {
            Some(s) if s != MerchantStatus::Pending => s,
            _ => {
                return Err(MerchantError::from(FieldViolation::new(
                    "status",
                    "must be ACTIVE, REJECTED or INACTIVE",
                ))
                .into());
            }
        };
        Ok(Response::new(merchant_to_proto(
            self.merchants
                .set_status(&caller, id, status, &r.reason)
                .await?,
        )))
    }

    async fn trash_merchant(
        &self,
        request: Request<pb::MerchantIdRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        Ok(Response::new(merchant_to_proto(
            self.merchants.set_trashed(&caller, id, true).await?,
        )))
    }

    async fn restore_merchant(
        &self,
        request: Request<pb::MerchantIdRequest>,
    ) -> Result<Response<pb::Merchant>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        Ok(Response::new(merchant_to_proto(
            self.merchants.set_trashed(&caller, id, false).await?,
        )))
    }

    async fn delete_merchant_permanently(
        &self,
        request: Request<pb::MerchantIdRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        self.merchants.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteResponse { deleted: true }))
    }

    async fn restore_all_merchants(
        &self,
        request: Request<pb::BulkRequest>,
    ) -> Result<Response<BulkResult>, Status> {
        let caller = self.caller(&request).await?;
        let affected = self.merchants.restore_all(&caller).await?;
        Ok(Response::new(BulkResult { affected }))
    }

    async fn delete_all_trashed_merchants(
        &self,
        request: Request<pb::BulkRequest>,
    ) -> Result<Response<BulkResult>, Status> {
        let caller = self.caller(&request).await?;
        let affected = self.merchants.delete_all_trashed(&caller).await?;
        Ok(Response::new(BulkResult { affected }))
    }

    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreatedApiKey>, Status> {
        let caller = self.caller(&request).await?;
        let merchant_id = parse_uuid("merchant_id", &request.get_ref().merchant_id)?;
        let (key, secret) = self.merchants.create_key(&caller, merchant_id).await?;
        Ok(Response::new(pb::CreatedApiKey {
            key: Some(key_to_proto(key)),
            api_key: secret,
        }))
    }

    async fn rotate_api_key(
        &self,
        request: Request<pb::RotateApiKeyRequest>,
    ) -> Result<Response<pb::CreatedApiKey>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let merchant_id = parse_uuid("merchant_id", &r.merchant_id)?;
        let key_id = parse_uuid("key_id", &r.key_id)?;
        let (key, secret) = self
            .merchants
            .rotate_key(&caller, merchant_id, key_id, r.overlap_seconds)
            .await?;
        Ok(Response::new(pb::CreatedApiKey {
            key: Some(key_to_proto(key)),
            api_key: secret,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::ApiKeyIdRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let merchant_id = parse_uuid("merchant_id", &r.merchant_id)?;
        let key_id = parse_uuid("key_id", &r.key_id)?;
        Ok(Response::new(key_to_proto(
            self.merchants
                .revoke_key(&caller, merchant_id, key_id)
                .await?,
        )))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::MerchantIdRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let caller = self.caller(&request).await?;
        let merchant_id = parse_uuid("id", &request.get_ref().id)?;
        let keys = self.merchants.list_keys(&caller, merchant_id).await?;
        Ok(Response::new(pb::ListApiKeysResponse {
            keys: keys.into_iter().map(key_to_proto).collect(),
        }))
    }

    async fn authenticate_api_key(
        &self,
        request: Request<pb::AuthenticateApiKeyRequest>,
    ) -> Result<Response<pb::ApiKeyIdentity>, Status> {
        let caller = self.caller(&request).await?;
        let (merchant, key_id, plan) = self
            .merchants
            .authenticate_key(&caller, request.get_ref().api_key.trim())
            .await?;
        Ok(Response::new(pb::ApiKeyIdentity {
            merchant: Some(merchant_to_proto(merchant)),
            key_id: key_id.to_string(),
            pricing: plan.map(plan_to_proto),
        }))
    }

    async fn set_pricing_plan(
        &self,
        request: Request<pb::SetPricingPlanRequest>,
    ) -> Result<Response<pb::PricingPlan>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let id = parse_uuid("merchant_id", &r.merchant_id)?;
        let plan = NewPlan {
            currency: r.currency,
            percent_bps: r.percent_bps,
            fixed_fee: r.fixed_fee,
            refund_fee: r.refund_fee,
        };
        Ok(Response::new(plan_to_proto(
            self.merchants.set_pricing(&caller, id, plan).await?,
        )))
    }

    async fn list_pricing_plans(
        &self,
        request: Request<pb::MerchantIdRequest>,
    ) -> Result<Response<pb::ListPricingPlansResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        let plans = self.merchants.pricing(&caller, id).await?;
        Ok(Response::new(pb::ListPricingPlansResponse {
            plans: plans.into_iter().map(plan_to_proto).collect(),
        }))
    }
}

fn plan_to_proto(p: PlanRow) -> pb::PricingPlan {
    pb::PricingPlan {
        merchant_id: p.merchant_id.to_string(),
        currency: p.currency,
        percent_bps: p.percent_bps,
        fixed_fee: p.fixed_fee,
        refund_fee: p.refund_fee.as_str().to_owned(),
        updated_by: p.updated_by,
        updated_at: Some(platform::time::to_proto(p.updated_at)),
    }
}

/// Implements `MerchantDocumentService`.
#[derive(Clone)]
pub struct DocumentHandlers {
    documents: Documents,
}

impl DocumentHandlers {
    pub fn new(documents: Documents) -> Self {
        Self { documents }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        Ok(self.documents.authenticator().require(request).await?)
    }
}

#[tonic::async_trait]
impl pb::merchant_document_service_server::MerchantDocumentService for DocumentHandlers {
    async fn submit_document(
        &self,
        request: Request<pb::SubmitDocumentRequest>,
    ) -> Result<Response<pb::MerchantDocument>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let merchant_id = parse_uuid("merchant_id", &r.merchant_id)?;
        Ok(Response::new(document_to_proto(
            self.documents
                .submit(
                    &caller,
                    merchant_id,
                    r.document_type.trim(),
                    r.document_url.trim(),
                )
                .await?,
        )))
    }

    async fn update_document(
        &self,
        request: Request<pb::UpdateDocumentRequest>,
    ) -> Result<Response<pb::MerchantDocument>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let id = parse_uuid("id", &r.id)?;
        Ok(Response::new(document_to_proto(
            self.documents
                .update(
                    &caller,
                    id,
                    r.document_type.map(|t| t.trim().to_owned()),
                    r.document_url.map(|u| u.trim().to_owned()),
                )
                .await?,
        )))
    }

    async fn get_document(
        &self,
        request: Request<pb::DocumentIdRequest>,
    ) -> Result<Response<pb::MerchantDocument>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        Ok(Response::new(document_to_proto(
            self.documents.get(&caller, id).await?,
        )))
    }

    async fn list_documents(
        &self,
        request: Request<pb::ListDocumentsRequest>,
    ) -> Result<Response<pb::ListDocumentsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let page = Page::from_proto(r.page.as_ref()).map_err(MerchantError::from)?;
        let merchant_id = match r.merchant_id.trim() {
            "" => None,
            raw => Some(parse_uuid("merchant_id", raw)?),
        };
        let (documents, total) = self
            .documents
            .list(
                &caller,
                merchant_id,
                document_status_from_proto(r.status),
                LifecycleFilter::from_proto(r.lifecycle),
                page,
            )
            .await?;
        Ok(Response::new(pb::ListDocumentsResponse {
            documents: documents.into_iter().map(document_to_proto).collect(),
            page_info: Some(page.info(total)),
        }))
    }

    async fn review_document(
        &self,
        request: Request<pb::ReviewDocumentRequest>,
    ) -> Result<Response<pb::MerchantDocument>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let id = parse_uuid("id", &r.id)?;
        let status = document_status_from_proto(r.status).ok_or_else(|| {
            MerchantError::from(FieldViolation::new(
                "status",
                "must be APPROVED or REJECTED",
            ))
        })?;
        Ok(Response::new(document_to_proto(
            self.documents.review(&caller, id, status, &r.note).await?,
        )))
    }

    async fn trash_document(
        &self,
        request: Request<pb::DocumentIdRequest>,
    ) -> Result<Response<pb::MerchantDocument>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        Ok(Response::new(document_to_proto(
            self.documents.set_trashed(&caller, id, true).await?,
        )))
    }

    async fn restore_document(
        &self,
        request: Request<pb::DocumentIdRequest>,
    ) -> Result<Response<pb::MerchantDocument>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        Ok(Response::new(document_to_proto(
            self.documents.set_trashed(&caller, id, false).await?,
        )))
    }

    async fn delete_document_permanently(
        &self,
        request: Request<pb::DocumentIdRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("id", &request.get_ref().id)?;
        self.documents.delete(&caller, id).await?;
        Ok(Response::new(pb::DeleteResponse { deleted: true }))
    }

    async fn restore_all_documents(
        &self,
        request: Request<pb::BulkRequest>,
    ) -> Result<Response<BulkResult>, Status> {
        let caller = self.caller(&request).await?;
        let affected = self.documents.restore_all(&caller).await?;
        Ok(Response::new(BulkResult { affected }))
    }

    async fn delete_all_trashed_documents(
        &self,
        request: Request<pb::BulkRequest>,
    ) -> Result<Response<BulkResult>, Status> {
        let caller = self.caller(&request).await?;
        let affected = self.documents.delete_all_trashed(&caller).await?;
        Ok(Response::new(BulkResult { affected }))
    }
}
