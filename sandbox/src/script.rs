//! How the provider behaves: a default scenario from the configuration, and rules a test (or
//! an operator trying failure modes) adds through `/_sandbox/rules`, matched by the request's
//! reference, amount or kind, first match wins, optionally only a number of times.

use serde::{Deserialize, Serialize};

use crate::store::Kind;

/// What becomes of an operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Succeeds after `decide_after_ms`.
    #[default]
    Approve,
    /// Fails after `decide_after_ms` with `failure_code`.
    Decline,
    /// Stays pending (a provider that never decides, until a rule or an operator does).
    Never,
}

/// How the outcome's callback is delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Callback {
    /// Once (retried with backoff until the receiver answers 2xx).
    #[default]
    Once,
    /// The same event twice.
    Twice,
    /// Never: only the status endpoint tells.
    Lost,
    /// Decided and delivered before the create request is answered.
    BeforeResponse,
}

/// One request's behaviour.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    pub outcome: Outcome,
    /// The decline's code (`insufficient_funds`, `do_not_honor`, `invalid_account`, …).
    pub failure_code: String,
    /// Time from the request to the decision.
    pub decide_after_ms: u64,
    /// Time before the create request is answered (longer than the caller's timeout = a
    /// timeout on their side, while the operation exists here).
    pub respond_after_ms: u64,
    pub callback: Callback,
    /// Answer the create request with this HTTP status (500, 502, 503, …) instead of the
    /// operation.
    pub http_status: Option<u16>,
    /// With `http_status`: whether the operation was recorded (and goes on to its outcome)
    /// although the caller got an error — the case failover must not pay twice for.
    pub record: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            outcome: Outcome::Approve,
            failure_code: "do_not_honor".into(),
            decide_after_ms: 100,
            respond_after_ms: 0,
            callback: Callback::Once,
            http_status: None,
            record: false,
        }
    }
}

/// Which requests a rule applies to (every given field must match).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Match {
    pub reference: Option<String>,
    pub amount: Option<i64>,
    pub kind: Option<Kind>,
}

impl Match {
    fn matches(&self, kind: Kind, reference: &str, amount: i64) -> bool {
        self.reference.as_deref().is_none_or(|r| r == reference)
            && self.amount.is_none_or(|a| a == amount)
            && self.kind.is_none_or(|k| k == kind)
    }
}

/// A scripted behaviour.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, rename = "match")]
    pub matcher: Match,
    #[serde(default)]
    pub scenario: Scenario,
    /// Applies this many times, then is dropped; `None` = until removed.
    #[serde(default)]
    pub times: Option<u32>,
}

/// The rules in force.
#[derive(Default)]
pub struct Script {
    rules: Vec<Rule>,
}

impl Script {
    pub fn add(&mut self, rule: Rule) {
        self.rules.push(rule);
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The scenario for a new operation, using up one of a limited rule's times.
    pub fn pick(
        &mut self,
        default: &Scenario,
        kind: Kind,
        reference: &str,
        amount: i64,
    ) -> Scenario {
        let Some(i) = self
            .rules
            .iter()
            .position(|r| r.matcher.matches(kind, reference, amount))
        else {
            return default.clone();
        };
        let scenario = self.rules[i].scenario.clone();
        if let Some(times) = self.rules[i].times.as_mut() {
            *times = times.saturating_sub(1);
            if *times == 0 {
                self.rules.remove(i);
            }
        }
        scenario
    }
}
