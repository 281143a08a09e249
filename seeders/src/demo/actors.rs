//! The demo actors: users, their cards and merchants, created through the services (or found
//! when a previous run created them), and the waits for their ledger accounts to open.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::{Clients, DEMO_PASSWORD, DemoCard, DemoMerchant};

pub(super) async fn find_user(c: &Clients, email: &str) -> anyhow::Result<Option<String>> {
    let page = c
        .users
        .clone()
        .list_users(c.request(proto::user::v1::ListUsersRequest {
            search: email.to_owned(),
            ..Default::default()
        })?)
        .await
        .context("listing users")?
        .into_inner();
    Ok(page
        .users
        .into_iter()
        .find(|u| u.email.eq_ignore_ascii_case(email))
        .map(|u| u.id))
}

pub(super) async fn ensure_user(
    c: &Clients,
    email: &str,
    first: &str,
    last: &str,
) -> anyhow::Result<String> {
    let created = c
        .users
        .clone()
        .create_user(c.request(proto::user::v1::CreateUserRequest {
            email: email.to_owned(),
            password: DEMO_PASSWORD.to_owned(),
            first_name: first.to_owned(),
            last_name: last.to_owned(),
            email_verified: true,
        })?)
        .await;
    match created {
        Ok(user) => Ok(user.into_inner().id),
        Err(s) if s.code() == tonic::Code::AlreadyExists => find_user(c, email)
            .await?
            .with_context(|| format!("{email} exists but is trashed")),
        Err(s) => Err(anyhow::anyhow!("creating {email}: {s}")),
    }
}

pub(super) async fn issue_card(c: &Clients, user_id: &str) -> anyhow::Result<DemoCard> {
    let created = c
        .cards
        .clone()
        .create_card(c.request(proto::card::v1::CreateCardRequest {
            user_id: user_id.to_owned(),
            brand: "visa".into(),
            card_type: proto::card::v1::CardType::Debit as i32,
            currency: "IDR".into(),
            valid_years: 5,
        })?)
        .await
        .context("issuing a card")?
        .into_inner();
    let card = created.card.context("no card in the reply")?;
    Ok(DemoCard {
        id: card.id,
        number: card.number,
        cvv: created.cvv,
    })
}

pub(super) async fn wait_account(c: &Clients, card_id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = c
            .saldo
            .clone()
            .get_card_account(c.request(proto::saldo::v1::CardAccountRequest {
                card_id: card_id.to_owned(),
            })?)
            .await;
        if found.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "card {card_id}'s account did not open within 60 s (is Kafka up?)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) async fn wait_merchant_account(c: &Clients, merchant_id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = c
            .saldo
            .clone()
            .get_merchant_account(c.request(proto::saldo::v1::MerchantAccountRequest {
                merchant_id: merchant_id.to_owned(),
            })?)
            .await;
        if found.is_ok() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "merchant {merchant_id}'s account did not open within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An applied (and, if `active`, approved) merchant of `owner` with a document and a key.
pub(super) async fn ensure_merchant(
    c: &Clients,
    owner: &str,
    name: &str,
    active: bool,
) -> anyhow::Result<DemoMerchant> {
    use proto::merchant::v1 as pb;
    let applied = c
        .merchants
        .clone()
        .apply_merchant(c.request(pb::ApplyMerchantRequest {
            user_id: owner.to_owned(),
            name: name.to_owned(),
            description: "A demo merchant".into(),
            website: "https://demo.payments.local".into(),
            currency: "IDR".into(),
        })?)
        .await;
    let merchant = match applied {
        Ok(m) => m.into_inner(),
        Err(s) if s.code() == tonic::Code::AlreadyExists => c
            .merchants
            .clone()
            .list_merchants(c.request(pb::ListMerchantsRequest {
                user_id: owner.to_owned(),
                search: name.to_owned(),
                ..Default::default()
            })?)
            .await?
            .into_inner()
            .merchants
            .into_iter()
            .next()
            .context("merchant name taken but not found")?,
        Err(s) => return Err(anyhow::anyhow!("applying {name}: {s}")),
    };
    let doc = c
        .documents
        .clone()
        .submit_document(c.request(pb::SubmitDocumentRequest {
            merchant_id: merchant.id.clone(),
            document_type: "business_license".into(),
            document_url: "https://demo.payments.local/license.pdf".into(),
        })?)
        .await?
        .into_inner();
    if active {
        c.documents
            .clone()
            .review_document(c.request(pb::ReviewDocumentRequest {
                id: doc.id,
                status: pb::DocumentStatus::Approved as i32,
                note: "demo: verified".into(),
            })?)
            .await?;
        if merchant.status == pb::MerchantStatus::Pending as i32 {
            c.merchants
                .clone()
                .update_merchant_status(c.request(pb::UpdateMerchantStatusRequest {
                    id: merchant.id.clone(),
                    status: pb::MerchantStatus::Active as i32,
                    reason: String::new(),
                })?)
                .await?;
        }
    }
    let key = c
        .merchants
        .clone()
        .create_api_key(c.request(pb::CreateApiKeyRequest {
            merchant_id: merchant.id.clone(),
        })?)
        .await?
        .into_inner();
    Ok(DemoMerchant {
        id: merchant.id,
        key: key.api_key,
    })
}
