-- The statistics rollup (stats_monthly, stats_counted) is the stats crate's
-- (crates/stats/schema/rollup.sql), applied before these migrations. This migration
-- created its first shape until it moved there.
SELECT 1;
