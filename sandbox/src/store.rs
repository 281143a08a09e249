//! What the provider remembers: its operations, the idempotency keys that created them, and
//! the settlement adjustments a test injected. Kept in memory and, with a state file, appended
//! to it as JSON lines and replayed at start (a restarted provider still knows its operations).

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A charge (money in: a top-up) or a payout (money out: a withdrawal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Charge,
    Payout,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "charge",
            Self::Payout => "payout",
        }
    }
}

/// Where an operation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Succeeded,
    Failed,
}

/// One operation, as the status endpoint and the callbacks show it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Operation {
    /// The provider's reference (`op_…`).
    pub id: String,
    pub kind: Kind,
    /// The caller's reference (the platform sends its top-up / withdraw id).
    pub reference: String,
    pub amount: i64,
    pub currency: String,
    pub method: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// An idempotency key: the hash of the request that used it first, and its operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyUse {
    pub key: String,
    pub request_hash: String,
    pub operation_id: String,
}

/// A settlement report's line, or a change a test asked for in one.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Adjustment {
    /// Leave the operation with this reference out of its report.
    Drop { reference: String },
    /// Report it with another amount.
    Amount { reference: String, amount: i64 },
    /// Report it with another currency.
    Currency { reference: String, currency: String },
    /// Report it twice.
    Duplicate { reference: String },
    /// Report an operation the platform never asked for, on `date`.
    Extra {
        reference: String,
        kind: Kind,
        amount: i64,
        currency: String,
        date: chrono::NaiveDate,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Operation(Operation),
    Key(KeyUse),
    Adjustment(Adjustment),
}

/// The provider's memory.
#[derive(Default)]
pub struct Store {
    pub operations: HashMap<String, Operation>,
    pub by_reference: HashMap<(Kind, String), String>,
    pub keys: HashMap<String, KeyUse>,
    pub adjustments: Vec<Adjustment>,
    file: Option<PathBuf>,
}

impl Store {
    /// An empty store, or the one the state file describes.
    pub fn open(file: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut store = Self {
            file: file.clone(),
            ..Self::default()
        };
        let Some(path) = file else {
            return Ok(store);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            // A torn last line (killed mid-write) is skipped; anything else is corruption.
            match serde_json::from_str::<Line>(line) {
                Ok(Line::Operation(op)) => store.remember(op),
                Ok(Line::Key(key)) => {
                    store.keys.insert(key.key.clone(), key);
                }
                Ok(Line::Adjustment(a)) => store.adjustments.push(a),
                Err(_) if n + 1 == text.lines().count() => {}
                Err(e) => return Err(e).with_context(|| format!("{}:{}", path.display(), n + 1)),
            }
        }
        Ok(store)
    }

    fn remember(&mut self, op: Operation) {
        self.by_reference
            .insert((op.kind, op.reference.clone()), op.id.clone());
        self.operations.insert(op.id.clone(), op);
    }

    fn append(&self, line: &Line) {
        let Some(path) = &self.file else { return };
        let written = serde_json::to_string(line)
            .map_err(anyhow::Error::from)
            .and_then(|json| {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                writeln!(f, "{json}")?;
                Ok(())
            });
        if let Err(e) = written {
            tracing::error!(error = %e, path = %path.display(), "cannot write the state file");
        }
    }

    /// Stores a new or changed operation.
    pub fn save(&mut self, op: Operation) {
        self.append(&Line::Operation(op.clone()));
        self.remember(op);
    }

    /// Records the first use of an idempotency key.
    pub fn save_key(&mut self, key: KeyUse) {
        self.append(&Line::Key(key.clone()));
        self.keys.insert(key.key.clone(), key);
    }

    /// Records a settlement adjustment.
    pub fn save_adjustment(&mut self, adjustment: Adjustment) {
        self.append(&Line::Adjustment(adjustment.clone()));
        self.adjustments.push(adjustment);
    }

    /// The operation of `kind` the caller created under `reference`.
    pub fn by_reference(&self, kind: Option<Kind>, reference: &str) -> Option<&Operation> {
        let kinds = match kind {
            Some(k) => vec![k],
            None => vec![Kind::Charge, Kind::Payout],
        };
        kinds.into_iter().find_map(|k| {
            self.by_reference
                .get(&(k, reference.to_owned()))
                .and_then(|id| self.operations.get(id))
        })
    }
}
