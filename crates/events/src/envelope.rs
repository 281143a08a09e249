//! The event envelope: `id`, `type` (`noun.verb`), `version`, `occurred_at`, `source`,
//! `subject` (the aggregate id, also the Kafka key) and `data`. The W3C trace context travels
//! in Kafka headers, not in the envelope.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Unique id; consumers deduplicate on it.
    pub id: Uuid,
    /// `noun.verb`, e.g. `user.registered`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Schema version of `data`.
    pub version: u32,
    /// When the change happened.
    pub occurred_at: DateTime<Utc>,
    /// The producing service.
    pub source: String,
    /// The aggregate id.
    pub subject: String,
    /// The payload.
    pub data: serde_json::Value,
}

impl Envelope {
    /// A version-1 event with a fresh id.
    pub fn new(
        source: &str,
        event_type: &str,
        subject: impl ToString,
        data: &impl Serialize,
    ) -> serde_json::Result<Self> {
        Ok(Self {
            id: Uuid::now_v7(),
            event_type: event_type.to_owned(),
            version: 1,
            occurred_at: Utc::now(),
            source: source.to_owned(),
            subject: subject.to_string(),
            data: serde_json::to_value(data)?,
        })
    }

    /// The same event at schema `version` of its `data`.
    #[must_use]
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// The payload as a typed value.
    pub fn data_as<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_value(self.data.clone())
    }
}
