-- The statistics rollup's monthly shape is the stats crate's (crates/stats/schema/rollup.sql);
-- this migration moved the daily rollup to it until the rollup moved there.
SELECT 1;
