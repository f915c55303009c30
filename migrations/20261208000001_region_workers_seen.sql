-- When a worker first served a region's queue: until then the region says "no workers yet"
-- rather than a health nobody measured.
ALTER TABLE regions ADD COLUMN workers_seen_at TIMESTAMPTZ;

UPDATE regions r SET workers_seen_at = h.first
FROM (SELECT q, min(started_at) AS first
      FROM worker_heartbeats, unnest(queues) AS q GROUP BY q) h
WHERE h.q = 'region_' || r.identifier;
