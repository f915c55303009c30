-- A finer histogram of the address index's expression: with the default 100 buckets, a
-- prefix such as '10.0.1.' (256 addresses of a million) was estimated at 5,000 matches, and
-- the planner then walked the whole hostname index for the first 50 (471 ms) instead of
-- reading the 256 from this index (1.8 ms).
ALTER INDEX devices_address_prefix_idx ALTER COLUMN 1 SET STATISTICS 1000;
ANALYZE devices;
