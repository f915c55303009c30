-- Worker liveness (webnet's own: apalis's worker rows are never deleted and lack a start
-- time) and the history of region health.

CREATE TABLE worker_heartbeats (
    -- Unique per process start ("<name>-<pid>-<random>").
    name            TEXT PRIMARY KEY,
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    version         TEXT NOT NULL,
    queues          TEXT[] NOT NULL,
    heartbeat_ms    INTEGER NOT NULL CHECK (heartbeat_ms > 0),
    running_tasks   INTEGER NOT NULL DEFAULT 0,
    started_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set by the monitor when it gave the worker up for dead and rescued its tasks.
    lost_at         TIMESTAMPTZ
);
CREATE INDEX worker_heartbeats_queues_idx ON worker_heartbeats USING gin (queues);

CREATE TABLE region_health_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    region_id    BIGINT NOT NULL REFERENCES regions (id) ON DELETE CASCADE,
    from_status  TEXT NOT NULL,
    to_status    TEXT NOT NULL,
    reason       TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('monitor', 'manual')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX region_health_events_region_idx ON region_health_events (region_id, created_at DESC);

-- How often a dispatch was re-queued because its worker was lost.
ALTER TABLE job_dispatches ADD COLUMN rescues INTEGER NOT NULL DEFAULT 0;
