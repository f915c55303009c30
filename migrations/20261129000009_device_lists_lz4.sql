-- A job's device list is stored twice, as its targets (jsonb) and as its dispatches'
-- device_ids (bigint[]); a thousand devices make both too large to keep inline, and the
-- default pglz compression cost about 4 ms per job on this machine, more than the rest of
-- the statement that records the job. lz4 compresses them in a fraction of that time.
-- PostgreSQL built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE jobs ALTER COLUMN target_summary SET COMPRESSION lz4;
    ALTER TABLE job_dispatches ALTER COLUMN device_ids SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available; device lists keep the default compression';
END
$$;
