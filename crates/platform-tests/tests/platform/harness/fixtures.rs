//! What tests need to exist before they start: customers, cards with money, active
//! merchants with keys, payments; and the books-balance check they end with.

use super::*;

/// A merchant as the tests use it.
#[derive(Clone, Debug)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    pub key: String,
    pub key_id: String,
}

/// A card as the tests use it.
#[derive(Clone, Debug)]
pub struct Card {
    pub id: String,
    pub number: String,
    pub cvv: String,
}

impl Platform {
    /// An admin-created, verified customer; returns (user id, access token).
    pub async fn customer(&self, admin: &str) -> (String, String) {
        let (id, token, _) = self.customer_with_email(admin).await;
        (id, token)
    }

    /// Like [`Self::customer`], with the customer's email address.
    pub async fn customer_with_email(&self, admin: &str) -> (String, String, String) {
        let email = email("customer");
        let (status, body) = self
            .post(
                "/users",
                Some(admin),
                json!({"email": email, "password": PASSWORD, "first_name": "Cara",
                       "last_name": "Money", "email_verified": true}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let token = self.login(&email, PASSWORD).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        (id, token, email)
    }

    /// A merchant of the user behind `owner_token`, approved by `admin`, with its settlement
    /// account open and one API key.
    pub async fn active_merchant(
        &self,
        admin: &str,
        owner_token: &str,
        currency: &str,
    ) -> Merchant {
        let merchant = self.apply_merchant(owner_token, currency).await;
        let (status, body) = self
            .post(
                &format!("/merchants/{}/status", merchant.id),
                Some(admin),
                json!({"status": "active"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        testkit::eventually(
            Duration::from_secs(20),
            "merchant account opened",
            || async {
                let (status, _) = self
                    .get(
                        &format!("/merchants/{}/balance", merchant.id),
                        Some(owner_token),
                    )
                    .await;
                (status == StatusCode::OK).then_some(())
            },
        )
        .await;
        merchant
    }

    /// A pending merchant with one API key.
    pub async fn apply_merchant(&self, owner_token: &str, currency: &str) -> Merchant {
        let name = format!("Shop {}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (status, body) = self
            .post(
                "/merchants",
                Some(owner_token),
                json!({"name": name, "currency": currency, "website": "https://shop.example"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["status"], "pending");
        let id = body["id"].as_str().unwrap().to_owned();
        let (status, key) = self
            .post(
                &format!("/merchants/{id}/api-keys"),
                Some(owner_token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        Merchant {
            id,
            name,
            key: key["api_key"].as_str().unwrap().to_owned(),
            key_id: key["key"]["id"].as_str().unwrap().to_owned(),
        }
    }

    /// A payment by a merchant's key; returns the status, body and response headers.
    pub async fn pay(
        &self,
        api_key: &str,
        idempotency_key: &str,
        body: Value,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let response = self
            .http
            .post(format!("{}/payments", self.base))
            .header("X-Api-Key", api_key)
            .header("Idempotency-Key", idempotency_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            headers,
        )
    }

    /// A refund by a merchant's key.
    pub async fn refund(
        &self,
        api_key: &str,
        payment_id: &str,
        idempotency_key: &str,
        amount: i64,
    ) -> (StatusCode, Value) {
        self.call_with(
            "POST",
            &format!("/payments/{payment_id}/refunds"),
            None,
            Some(json!({"amount": amount, "reason": "customer returned the goods"})),
            &[("X-Api-Key", api_key), ("Idempotency-Key", idempotency_key)],
        )
        .await
    }

    /// A new customer (their token) and a card of theirs holding `amount`, topped up through
    /// a provider.
    pub async fn funded_card(&self, admin: &str, amount: i64) -> (String, Card) {
        let (_, customer) = self.customer(admin).await;
        let card = self.card(&customer, "IDR").await;
        let (status, topup) = self.topup(&customer, &card.number, amount).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{topup}");
        assert_eq!(topup["status"], "succeeded");
        (customer, card)
    }

    /// The merchant's settlement balance.
    pub async fn merchant_balance(&self, token: &str, merchant_id: &str) -> i64 {
        let (status, body) = self
            .get(&format!("/merchants/{merchant_id}/balance"), Some(token))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["balance"].as_i64().unwrap()
    }

    /// Creates a card and waits until its ledger account is open (via Kafka).
    pub async fn card(&self, token: &str, currency: &str) -> Card {
        let (status, body) = self
            .post(
                "/cards",
                Some(token),
                json!({"brand": "visa", "card_type": "debit", "currency": currency}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let card = Card {
            id: body["card"]["id"].as_str().unwrap().to_owned(),
            number: body["card"]["number"].as_str().unwrap().to_owned(),
            cvv: body["cvv"].as_str().unwrap().to_owned(),
        };
        testkit::eventually(Duration::from_secs(20), "card account opened", || async {
            let (status, _) = self
                .get(&format!("/cards/{}/balance", card.id), Some(token))
                .await;
            (status == StatusCode::OK).then_some(())
        })
        .await;
        card
    }

    pub async fn balance(&self, token: &str, card_id: &str) -> i64 {
        let (status, body) = self
            .get(&format!("/cards/{card_id}/balance"), Some(token))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["balance"].as_i64().unwrap()
    }

    /// POST with an Idempotency-Key.
    pub async fn post_idem(
        &self,
        path: &str,
        token: &str,
        key: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call_with(
            "POST",
            path,
            Some(token),
            Some(body),
            &[("Idempotency-Key", key)],
        )
        .await
    }

    /// A top-up through NGINX; a pending one (`202`) is awaited until its provider decided
    /// (callback or poller): the answer's status and the top-up as it ends.
    pub async fn topup(&self, token: &str, number: &str, amount: i64) -> (StatusCode, Value) {
        let key = uuid::Uuid::new_v4().to_string();
        let (status, body) = self
            .post_idem(
                "/topups",
                token,
                &key,
                json!({"card_number": number, "amount": amount, "method": "bca"}),
            )
            .await;
        if status != StatusCode::ACCEPTED {
            return (status, body);
        }
        (status, self.settled_topup(token, &body).await)
    }

    /// The top-up `pending` once its provider decided: `succeeded` or `failed`.
    pub async fn settled_topup(&self, token: &str, pending: &Value) -> Value {
        self.settled("topups", token, pending).await
    }

    /// A pending top-up or withdrawal (`collection`) once its provider decided.
    pub async fn settled(&self, collection: &str, token: &str, pending: &Value) -> Value {
        let path = format!("/{collection}/{}", pending["id"].as_str().unwrap());
        testkit::eventually(
            Duration::from_secs(20),
            "the provider's outcome",
            || async {
                let (_, now) = self.get(&path, Some(token)).await;
                (now["status"] != "pending").then_some(now)
            },
        )
        .await
    }

    pub async fn transfer(
        &self,
        token: &str,
        from: &str,
        to: &str,
        amount: i64,
    ) -> (StatusCode, Value) {
        let key = uuid::Uuid::new_v4().to_string();
        self.post_idem(
            "/transfers",
            token,
            &key,
            json!({"from_card_number": from, "to_card_number": to, "amount": amount}),
        )
        .await
    }

    /// A withdrawal through NGINX; a pending one (`202`: held, the payout under way) is
    /// awaited until its provider decided: the answer's status and the withdrawal as it ends.
    pub async fn withdraw(&self, token: &str, number: &str, amount: i64) -> (StatusCode, Value) {
        let key = uuid::Uuid::new_v4().to_string();
        let (status, body) = self
            .post_idem(
                "/withdraws",
                token,
                &key,
                json!({"card_number": number, "amount": amount, "method": "mandiri"}),
            )
            .await;
        if status != StatusCode::ACCEPTED {
            return (status, body);
        }
        (status, self.settled("withdraws", token, &body).await)
    }

    /// The ledger's reconciliation, asserted balanced.
    pub async fn assert_books_balance(&self, admin: &str) -> Value {
        let (status, report) = self.get("/saldo/reconcile", Some(admin)).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["balanced"], true, "books do not balance: {report}");
        assert_eq!(report["journal_sum"], 0);
        report
    }
}
