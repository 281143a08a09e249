//! Every Kafka topic and consumer group of the platform, in one place (mirrored by the
//! topic-creation Job in `k8s/`).

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
        name: DEAD_LETTER,
        partitions: 1,
    },
];

/// Consumer groups.
pub mod groups {
    /// The role service assigning default roles to new users.
    pub const ROLE_USER_EVENTS: &str = "role-service.user-events";
}

/// Creates missing topics (existing ones are left alone).
pub async fn ensure(brokers: &str, topics: &[Topic], replication: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating Kafka admin client")?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t.name, t.partitions, TopicReplication::Fixed(replication)))
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
