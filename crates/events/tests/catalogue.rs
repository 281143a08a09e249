//! The event catalogue: the committed AsyncAPI document is the one the code produces, every
//! schema compiles, and a schema accepts what its producer serializes and refuses what breaks
//! the contract.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use events::Envelope;
use events::catalogue::{self, EventSpec};
use events::payloads::movement::Movement;
use serde_json::json;

const DOCUMENT: &str = "asyncapi.json";

#[test]
fn the_committed_asyncapi_document_is_the_one_the_code_produces() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DOCUMENT);
    let current = serde_json::to_string_pretty(&catalogue::asyncapi()).unwrap() + "\n";
    if std::env::var_os("UPDATE_ASYNCAPI").is_some() {
        std::fs::write(&path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "crates/events/{DOCUMENT} is out of date: run `UPDATE_ASYNCAPI=1 cargo test -p events \
         --test catalogue` and commit it (and bump the version of any event whose data changed \
         incompatibly)"
    );
}

#[test]
fn every_event_type_is_listed_once_and_its_schema_compiles() {
    let mut seen = HashSet::new();
    for spec in catalogue::all() {
        assert!(seen.insert(spec.name()), "{} listed twice", spec.name());
        jsonschema::validator_for(&spec.schema())
            .unwrap_or_else(|e| panic!("the schema of {} does not compile: {e}", spec.name()));
        assert!(
            events::topics::ALL.iter().any(|t| t.name == spec.topic),
            "{} names an unknown topic",
            spec.name()
        );
    }
    assert_eq!(seen.len(), 51);
}

fn validator(spec: &EventSpec) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&spec.schema())
        .unwrap()
}

#[test]
fn a_schema_accepts_what_the_producer_writes_and_refuses_a_broken_event() {
    let spec = catalogue::find("transfer.failed", 1).unwrap();
    let validator = validator(&spec);
    let data = Movement {
        id: uuid::Uuid::now_v7(),
        kind: "transfer".into(),
        status: "failed".into(),
        failure_reason: Some("INSUFFICIENT_FUNDS".into()),
        amount: 5_000,
        currency: "IDR".into(),
        method: None,
        card_id: uuid::Uuid::now_v7(),
        user_id: uuid::Uuid::now_v7(),
        masked_card_number: "**** **** **** 1234".into(),
        to_card_id: Some(uuid::Uuid::now_v7()),
        to_user_id: Some(uuid::Uuid::now_v7()),
        masked_to_card_number: Some("**** **** **** 9876".into()),
        created_at: chrono::Utc::now(),
        completed_at: chrono::Utc::now(),
        provider: None,
        provider_failure_code: None,
    };
    let event = Envelope::new("transfer-service", "transfer.failed", data.id, &data).unwrap();
    let good = serde_json::to_value(&event).unwrap();
    assert!(
        validator.validate(&good).is_ok(),
        "{:?}",
        validator.validate(&good).err()
    );

    let mut wrong_type = good.clone();
    wrong_type["type"] = json!("transfer.succeeded");
    let mut missing = good.clone();
    missing["data"].as_object_mut().unwrap().remove("amount");
    let mut not_a_number = good.clone();
    not_a_number["data"]["amount"] = json!("5000");
    let mut bad_id = good.clone();
    bad_id["data"]["card_id"] = json!("card-1");
    let mut next_version = good.clone();
    next_version["version"] = json!(2);
    for (what, broken) in [
        ("another type", wrong_type),
        ("a missing field", missing),
        ("a string amount", not_a_number),
        ("a card id that is no uuid", bad_id),
        ("another version", next_version),
    ] {
        assert!(!validator.is_valid(&broken), "{what} was accepted");
    }
}
