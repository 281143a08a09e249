//! Starting and stopping a platform: every service with its configuration, the gateway,
//! NGINX in front — `REPLICAS` (default 1) replicas of each, sharing the database, topics,
//! consumer groups, Redis and providers, NGINX spreading the edge over all of them; on drop,
//! the published events are checked against the catalogue.

use super::*;

pub struct Platform {
    pub nginx: testkit::Nginx,
    /// The payment providers (sandbox processes): every method goes to `sandpay` first,
    /// `kilat` second, except `gopay` (`kilat` first). `kilat` speaks the order-based API,
    /// so both adapters are exercised.
    pub sandpay: testkit::sandbox::SandboxProvider,
    pub kilat: testkit::sandbox::SandboxProvider,
    pub smtp: testkit::Smtp,
    pub merchant_grpc: String,
    pub transaction_grpc: String,
    pub topup_grpc: String,
    pub withdraw_grpc: String,
    pub base: String,
    pub http: reqwest::Client,
    pub user_grpc: String,
    pub role_grpc: String,
    pub card_grpc: String,
    pub saldo_grpc: String,
    pub transfer_grpc: String,
    pub database_url: String,
    /// The topup service's settings, for its commands (`reconcile-providers`).
    pub topup_config: movement::app::Config,
    /// The first replica's (its addresses are the `*_grpc` fields above).
    shutdown: Shutdown,
    /// Every replica's, the first included.
    replicas: Vec<Shutdown>,
}

impl Drop for Platform {
    /// Stops the services, then checks every event they published against the catalogue
    /// (on a thread of its own: this runs inside the test's runtime).
    fn drop(&mut self) {
        self.shutdown.trigger();
        for replica in &self.replicas {
            replica.trigger();
        }
        if std::thread::panicking() {
            return;
        }
        let url = self.database_url.clone();
        let checked = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(contract::published_events_match_the_catalogue(&url)))
        })
        .join();
        match checked {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{e:#}"),
            Err(_) => panic!("checking the published events panicked"),
        }
    }
}

/// Calls per principal and minute through the public gRPC port, for the services built next
/// (one platform per test process).
static EDGE_LIMIT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000_000);

/// The settings every service shares; it serves gRPC on `listener`.
pub fn common(name: &str, database_url: &str, listener: &BoundListener) -> CommonConfig {
    CommonConfig {
        service_name: name.into(),
        grpc_addr: listener.local_addr(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        database_url: platform::Secret::new(database_url.to_owned()),
        database_max_connections: 6,
        redis_url: platform::Secret::new(testkit::redis_url()),
        kafka_brokers: testkit::kafka_brokers(),
        jwt: jwt_for(name),
        migrate_on_start: true,
        edge_rate_limit_per_minute: EDGE_LIMIT.load(std::sync::atomic::Ordering::Relaxed),
        grpc_listener: Some(listener.clone()),
    }
}

impl Platform {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        EDGE_LIMIT.store(
            options.edge_rate_limit_per_minute,
            std::sync::atomic::Ordering::Relaxed,
        );
        // Tracing as in the binaries, so trace ids exist and propagate (one per process).
        static TELEMETRY: std::sync::OnceLock<Option<platform::telemetry::TelemetryGuard>> =
            std::sync::OnceLock::new();
        TELEMETRY.get_or_init(|| platform::telemetry::init("platform-tests").ok());
        // Topics of its own: consumers never wait behind other tests' events (one process
        // per test under nextest; a second platform of the same test shares them).
        events::topics::set_namespace(&format!("{}.", testkit::unique("t")));
        let shared = Shared {
            database_url: testkit::fresh_database().await.unwrap(),
            groups: Groups::new(),
            smtp: testkit::Smtp::start().await.unwrap(),
            sandpay: testkit::sandbox::SandboxProvider::start("sandpay")
                .await
                .unwrap(),
            kilat: testkit::sandbox::SandboxProvider::start_speaking(
                testkit::sandbox::binary(),
                "kilat",
                "orders",
                100,
            )
            .await
            .unwrap(),
            nginx_http_port: testkit::free_port(),
        };
        // Every replica of every service: the same database, broker topics, consumer groups,
        // Redis and providers, as replicas in a cluster share them.
        let mut replicas = Vec::new();
        for _ in 0..options.replicas.max(1) {
            replicas.push(boot_replica(&shared, &options).await);
        }
        // NGINX spreads the edge over every replica (`server a; server b` in each upstream).
        let every = |pick: fn(&Replica) -> String| {
            replicas
                .iter()
                .map(pick)
                .collect::<Vec<_>>()
                .join("; server ")
        };
        let nginx = testkit::Nginx::start_on(
            shared.nginx_http_port,
            &every(|r| r.gateway.clone()),
            &[
                ("USER_GRPC_UPSTREAM", every(|r| r.user.clone())),
                ("ROLE_GRPC_UPSTREAM", every(|r| r.role.clone())),
                ("CARD_GRPC_UPSTREAM", every(|r| r.card.clone())),
                ("SALDO_GRPC_UPSTREAM", every(|r| r.saldo.clone())),
                ("TOPUP_GRPC_UPSTREAM", every(|r| r.topup.clone())),
                ("WITHDRAW_GRPC_UPSTREAM", every(|r| r.withdraw.clone())),
                ("TRANSFER_GRPC_UPSTREAM", every(|r| r.transfer.clone())),
                ("MERCHANT_GRPC_UPSTREAM", every(|r| r.merchant.clone())),
                (
                    "TRANSACTION_GRPC_UPSTREAM",
                    every(|r| r.transaction.clone()),
                ),
            ],
        )
        .await
        .unwrap();
        let base = format!("{}/api/v1", nginx.url());
        let url = |addr: &str| format!("http://{addr}");
        let first = &replicas[0];
        Self {
            nginx,
            merchant_grpc: url(&first.merchant),
            transaction_grpc: url(&first.transaction),
            topup_grpc: url(&first.topup),
            withdraw_grpc: url(&first.withdraw),
            user_grpc: url(&first.user),
            role_grpc: url(&first.role),
            card_grpc: url(&first.card),
            saldo_grpc: url(&first.saldo),
            transfer_grpc: url(&first.transfer),
            topup_config: first.topup_config.clone(),
            base,
            http: reqwest::Client::new(),
            database_url: shared.database_url.clone(),
            sandpay: shared.sandpay,
            kilat: shared.kilat,
            smtp: shared.smtp,
            shutdown: first.shutdown.clone(),
            replicas: replicas.into_iter().map(|r| r.shutdown).collect(),
        }
    }

    /// How many replicas of every service run.
    pub fn replica_count(&self) -> usize {
        self.replicas.len()
    }

    /// Stops replica `index`'s every service at once (as a node lost), the others serving on.
    pub fn stop_replica(&self, index: usize) {
        self.replicas[index].trigger();
    }
}

/// What every replica of a platform shares.
struct Shared {
    database_url: String,
    groups: Groups,
    smtp: testkit::Smtp,
    sandpay: testkit::sandbox::SandboxProvider,
    kilat: testkit::sandbox::SandboxProvider,
    nginx_http_port: u16,
}

/// The consumer groups of a platform: one name per group, whichever replica consumes.
struct Groups {
    role_user_events: String,
    saldo_card_events: String,
    saldo_stats: String,
    payment_stats: String,
    email: String,
    merchant_webhooks: String,
    movement_stats: [String; 3],
}

impl Groups {
    fn new() -> Self {
        Self {
            role_user_events: testkit::unique("role-user-events"),
            saldo_card_events: testkit::unique("saldo-card-events"),
            saldo_stats: testkit::unique("saldo-stats"),
            payment_stats: testkit::unique("payment-stats"),
            email: testkit::unique("email"),
            merchant_webhooks: testkit::unique("merchant-webhooks"),
            movement_stats: std::array::from_fn(|_| testkit::unique("movement-stats")),
        }
    }

    fn movement(&self, kind: movement::Kind) -> String {
        self.movement_stats[match kind {
            movement::Kind::Topup => 0,
            movement::Kind::Withdraw => 1,
            movement::Kind::Transfer => 2,
        }]
        .clone()
    }
}

/// One replica of every service and the gateway: their addresses, its topup config and the
/// token that stops them.
struct Replica {
    user: String,
    role: String,
    card: String,
    saldo: String,
    topup: String,
    withdraw: String,
    transfer: String,
    merchant: String,
    transaction: String,
    gateway: String,
    topup_config: movement::app::Config,
    shutdown: Shutdown,
}

/// Starts one replica of every service and of the gateway, calling one another within the
/// replica.
async fn boot_replica(shared: &Shared, options: &Options) -> Replica {
    let shutdown = Shutdown::new();
    let database_url = &shared.database_url;
    let groups = &shared.groups;
    // Every service's listener is bound before any service starts, so each knows the
    // others' addresses and no port can be taken in between.
    let [
        user_at,
        role_at,
        card_at,
        saldo_at,
        topup_at,
        withdraw_at,
        transfer_at,
        merchant_at,
        transaction_at,
        email_at,
    ] = std::array::from_fn(|_| BoundListener::loopback().unwrap());
    let addr = |l: &BoundListener| l.local_addr().to_string();
    let url = |l: &BoundListener| format!("http://{}", addr(l));
    let (user_url, role_url) = (url(&user_at), url(&role_at));
    let (card_url, saldo_url) = (url(&card_at), url(&saldo_at));

    let role = role_service::Application::build(role_service::Config {
        common: common("role-service", database_url, &role_at),
        user_service_url: user_url.clone(),
        user_events_group: groups.role_user_events.clone(),
    })
    .await
    .unwrap();
    tokio::spawn(role.run(shutdown.clone()));

    let user = user_service::Application::build(user_service::Config {
        common: common("user-service", database_url, &user_at),
        role_service_url: role_url.clone(),
        lifetimes: user_service::service::TokenLifetimes {
            refresh: Duration::from_secs(3600),
            verification: Duration::from_secs(3600),
            password_reset: Duration::from_secs(3600),
        },
        login_max_failures: options.login_max_failures,
        login_failure_window: Duration::from_secs(900),
        login_lockout: Duration::from_secs(900),
        link_key: link_key(),
        password_hash_concurrency: options.password_hash_concurrency,
        password_hash_queue: options.password_hash_queue,
        password_hash_wait: Duration::from_secs(5),
        emails_per_recipient_per_hour: options.emails_per_recipient_per_hour,
    })
    .await
    .unwrap();
    tokio::spawn(user.run(shutdown.clone()));

    let saldo = saldo_service::Application::build(saldo_service::Config {
        common: common("saldo-service", database_url, &saldo_at),
        card_events_group: groups.saldo_card_events.clone(),
        stats_time_zone: "UTC".into(),
        stats_group: groups.saldo_stats.clone(),
    })
    .await
    .unwrap();
    tokio::spawn(saldo.run(shutdown.clone()));

    let card = card_service::Application::build(card_service::Config {
        common: common("card-service", database_url, &card_at),
        user_service_url: user_url.clone(),
        saldo_service_url: saldo_url.clone(),
        cvv_key: platform::Secret::new(CVV_KEY.to_owned()),
        pan_key: platform::Secret::new(PAN_KEY.to_owned()),
        currencies: vec!["IDR".into(), "USD".into()],
        cvv_lockout: card_service::service::CvvLockout {
            max_attempts: 3,
            lock_for: Duration::from_secs(600),
            per_key_max_failures: options.cvv_failures_per_key,
            per_key_window: Duration::from_secs(3600),
        },
    })
    .await
    .unwrap();
    tokio::spawn(card.run(shutdown.clone()));

    let merchant = merchant_service::Application::build(merchant_service::Config {
        common: common("merchant-service", database_url, &merchant_at),
        user_service_url: user_url.clone(),
        saldo_service_url: saldo_url.clone(),
        currencies: vec!["IDR".into(), "USD".into()],
        webhooks: webhook_config(&groups.merchant_webhooks, options),
    })
    .await
    .unwrap();
    tokio::spawn(merchant.run(shutdown.clone()));

    let transaction = transaction_service::Application::build(transaction_service::Config {
        common: common("transaction-service", database_url, &transaction_at),
        card_service_url: card_url.clone(),
        saldo_service_url: saldo_url.clone(),
        merchant_service_url: url(&merchant_at),
        rules: movement::Rules {
            min_amount: 100,
            max_amount: 100_000_000,
            methods: movement::DEFAULT_METHODS
                .iter()
                .map(|m| (*m).to_owned())
                .collect(),
        },
        recovery_interval: Duration::from_millis(500),
        recovery_grace: Duration::from_secs(2),
        authorization_ttl: options.authorization_ttl,
        stats_time_zone: "UTC".into(),
        stats_group: groups.payment_stats.clone(),
    })
    .await
    .unwrap();
    tokio::spawn(transaction.run(shutdown.clone()));

    let email = email_service::Application::build(email_service::Config {
        common: common("email-service", database_url, &email_at),
        user_service_url: user_url.clone(),
        smtp: email_service::mailer::SmtpConfig {
            host: "127.0.0.1".into(),
            port: shared.smtp.port(),
            tls: email_service::mailer::TlsMode::None,
            credentials: None,
            timeout: Duration::from_secs(5),
            from: "Payments <no-reply@payments.test>".into(),
        },
        settings: email_service::handler::Settings {
            brand: "Payments".into(),
            base_url: "http://payments.test".into(),
            max_attempts: options.email_max_attempts,
            link_key: link_key(),
        },
        templates_dir: None,
        group: groups.email.clone(),
        dead_letter_topic: options.dead_letter_topic.clone(),
        retry_initial: Duration::from_millis(200),
        retry_max: Duration::from_secs(1),
        concurrency: 8,
    })
    .await
    .unwrap();
    tokio::spawn(email.run(shutdown.clone()));

    let providers = || {
        Some(provider_settings(
            &shared.sandpay,
            &shared.kilat,
            shared.nginx_http_port,
        ))
    };
    let movement = |kind, at, providers| {
        let mut config = movement_config(kind, database_url, at, &card_url, &saldo_url, providers);
        config.stats_group = groups.movement(kind);
        config
    };
    let topup_config = movement(movement::Kind::Topup, &topup_at, providers());
    let topup = topup_service::build(topup_config.clone()).await.unwrap();
    let routes = topup_service::routes(&topup);
    tokio::spawn(topup.run(routes, shutdown.clone()));
    let withdraw = withdraw_service::build(movement(
        movement::Kind::Withdraw,
        &withdraw_at,
        providers(),
    ))
    .await
    .unwrap();
    let routes = withdraw_service::routes(&withdraw);
    tokio::spawn(withdraw.run(routes, shutdown.clone()));
    let transfer = transfer_service::build(movement(movement::Kind::Transfer, &transfer_at, None))
        .await
        .unwrap();
    let routes = transfer_service::routes(&transfer);
    tokio::spawn(transfer.run(routes, shutdown.clone()));

    let gateway = gateway::Application::build(gateway::Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        user_service_url: user_url.clone(),
        role_service_url: role_url.clone(),
        card_service_url: card_url.clone(),
        saldo_service_url: saldo_url.clone(),
        topup_service_url: url(&topup_at),
        withdraw_service_url: url(&withdraw_at),
        transfer_service_url: url(&transfer_at),
        merchant_service_url: url(&merchant_at),
        transaction_service_url: url(&transaction_at),
        redis_url: platform::Secret::new(testkit::redis_url()),
        jwt: jwt_for("gateway"),
        rate_limit_per_minute: options.rate_limit_per_minute,
        rate_limit_anonymous_per_minute: options.rate_limit_per_minute,
        grpc_deadline: Duration::from_secs(10),
        body_limit_bytes: 64 * 1024,
        kafka_brokers: testkit::kafka_brokers(),
    })
    .await
    .unwrap();
    let gateway_addr = gateway.http_addr();
    tokio::spawn(gateway.run(shutdown.clone()));

    Replica {
        user: addr(&user_at),
        role: addr(&role_at),
        card: addr(&card_at),
        saldo: addr(&saldo_at),
        topup: addr(&topup_at),
        withdraw: addr(&withdraw_at),
        transfer: addr(&transfer_at),
        merchant: addr(&merchant_at),
        transaction: addr(&transaction_at),
        gateway: gateway_addr.to_string(),
        topup_config,
        shutdown,
    }
}
