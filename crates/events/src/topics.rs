//! Every Kafka topic and consumer group of the platform, in one place (mirrored by the
//! topic-creation Job in `k8s/`).
//!
//! Code names topics by their logical names (the constants below); [`physical`] turns one into
//! the name on the broker by putting the process's namespace in front (`KAFKA_TOPIC_NAMESPACE`,
//! empty by default). The outbox relay, the consumer loop and topic creation apply it at the
//! Kafka boundary, so outbox rows, handlers and dead-letter headers keep logical names. Each
//! test platform runs in a namespace of its own, so its consumers never wait behind other
//! tests' events; several platforms can also share one cluster this way.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

/// A topic and its partition count.
#[derive(Clone, Copy, Debug)]
pub struct Topic {
    /// Name.
    pub name: &'static str,
    /// Partitions; keys are aggregate ids, so per-aggregate order holds.
    pub partitions: i32,
}

/// User lifecycle events (`user.*`), keyed by user id.
pub const USER_EVENTS: &str = "payments.user.events";
/// Role and assignment events (`role.*`), keyed by role or user id.
pub const ROLE_EVENTS: &str = "payments.role.events";
/// Card lifecycle events (`card.*`), keyed by card id.
pub const CARD_EVENTS: &str = "payments.card.events";
/// Ledger events (`account.opened`, `balance.changed`), keyed by account id.
pub const SALDO_EVENTS: &str = "payments.saldo.events";
/// Top-up completions (`topup.succeeded` / `topup.failed`), keyed by topup id.
pub const TOPUP_EVENTS: &str = "payments.topup.events";
/// Withdraw completions, keyed by withdraw id.
pub const WITHDRAW_EVENTS: &str = "payments.withdraw.events";
/// Transfer completions, keyed by transfer id.
pub const TRANSFER_EVENTS: &str = "payments.transfer.events";
/// Merchant lifecycle, status, API-key and document events (`merchant.*`,
/// `merchant_document.*`), keyed by merchant id.
pub const MERCHANT_EVENTS: &str = "payments.merchant.events";
/// Payment and refund completions (`payment.*`, `refund.*`), keyed by payment id.
pub const TRANSACTION_EVENTS: &str = "payments.transaction.events";
/// Settlement reconciliation exceptions of the provider-backed movements
/// (`reconciliation.exception_opened` / `_resolved`), keyed by exception id.
pub const RECONCILIATION_EVENTS: &str = "payments.reconciliation.events";
/// Messages a consumer could not process, with the reason in headers.
pub const DEAD_LETTER: &str = "payments.dead-letter";

/// Every topic the platform uses.
pub const ALL: &[Topic] = &[
    Topic {
        name: USER_EVENTS,
        partitions: 6,
    },
    Topic {
        name: ROLE_EVENTS,
        partitions: 6,
    },
    Topic {
        name: CARD_EVENTS,
        partitions: 6,
    },
    Topic {
        name: SALDO_EVENTS,
        partitions: 12,
    },
    Topic {
        name: TOPUP_EVENTS,
        partitions: 6,
    },
    Topic {
        name: WITHDRAW_EVENTS,
        partitions: 6,
    },
    Topic {
        name: TRANSFER_EVENTS,
        partitions: 6,
    },
    Topic {
        name: MERCHANT_EVENTS,
        partitions: 6,
    },
    Topic {
        name: TRANSACTION_EVENTS,
        partitions: 6,
    },
    Topic {
        name: RECONCILIATION_EVENTS,
        partitions: 3,
    },
    Topic {
        name: DEAD_LETTER,
        partitions: 1,
    },
];

/// Consumer groups.
pub mod groups {
    /// The role service assigning default roles to new users.
    pub const ROLE_USER_EVENTS: &str = "role-service.user-events";
    /// The saldo service opening and closing card accounts (card events) and merchant
    /// settlement accounts (merchant events).
    pub const SALDO_CARD_EVENTS: &str = "saldo-service.card-events";
    /// The email service.
    pub const EMAIL: &str = "email-service";
    /// The merchant service turning platform events into webhook events.
    pub const MERCHANT_WEBHOOKS: &str = "merchant-service.webhooks";
}

static NAMESPACE: OnceLock<String> = OnceLock::new();

/// Sets the process's topic namespace (a prefix such as `"t-1f2e."`); the first call, or the
/// first use of [`namespace`], wins. Returns whether this call set it.
pub fn set_namespace(namespace: &str) -> bool {
    NAMESPACE.set(namespace.to_owned()).is_ok()
}

/// The process's topic namespace: what [`set_namespace`] set, else `KAFKA_TOPIC_NAMESPACE`,
/// else empty.
pub fn namespace() -> &'static str {
    NAMESPACE.get_or_init(|| std::env::var("KAFKA_TOPIC_NAMESPACE").unwrap_or_default())
}

/// The broker-side name of the logical topic `name`.
pub fn physical(name: &str) -> Cow<'_, str> {
    match namespace() {
        "" => Cow::Borrowed(name),
        prefix => Cow::Owned(format!("{prefix}{name}")),
    }
}

/// The logical name of the broker-side topic `name` (the inverse of [`physical`]).
pub fn logical(name: &str) -> &str {
    name.strip_prefix(namespace()).unwrap_or(name)
}

/// Creates missing topics (existing ones are left alone).
pub async fn ensure(brokers: &str, topics: &[Topic], replication: i32) -> anyhow::Result<()> {
    let specs: Vec<(&str, i32)> = topics.iter().map(|t| (t.name, t.partitions)).collect();
    create(brokers, &specs, replication).await
}

/// Creates one topic if it is missing (tests and tools with names made at run time).
pub async fn ensure_named(brokers: &str, name: &str, partitions: i32) -> anyhow::Result<()> {
    create(brokers, &[(name, partitions)], 1).await
}

/// Start-up helper of services: creates the platform's topics, but never fails start-up.
/// Topics normally come from the topic Job (k8s) or the local runner; this keeps a fresh
/// laptop broker working, and the relay retries if the broker is not there yet.
pub async fn ensure_best_effort(brokers: &str) {
    match tokio::time::timeout(Duration::from_secs(10), ensure(brokers, ALL, 1)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "could not ensure Kafka topics"),
        Err(_) => tracing::warn!("Kafka did not answer topic creation within 10 s"),
    }
}

async fn create(brokers: &str, topics: &[(&str, i32)], replication: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating Kafka admin client")?;
    let names: Vec<Cow<'_, str>> = topics.iter().map(|(name, _)| physical(name)).collect();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .zip(&names)
        .map(|((_, partitions), name)| {
            NewTopic::new(name, *partitions, TopicReplication::Fixed(replication))
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(new.iter(), &options)
        .await
        .context("creating Kafka topics")?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}
