-- The movement table has one name in the topup, withdraw and transfer schemas, so the
-- shared orchestrator's SQL (crates/movement) names it without building table names.
ALTER TABLE withdraws RENAME TO movements;
