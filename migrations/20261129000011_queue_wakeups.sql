-- Wake-ups per queue. apalis's insert trigger notifies one channel for every queue, so every
-- worker process woke for every new task of every region: with 200 workers, one job woke 200
-- processes, and 200 jobs a second kept two cores busy doing nothing else. Each queue now
-- has a channel of its own, notified whenever a dispatch is queued on it (created, re-queued
-- under a new task, failed over or moved back), and a worker listens only to its queues'.
-- The channel is 'wq_' and the md5 of the queue name: queue names can be longer than a
-- channel name may be (63 bytes).
CREATE FUNCTION job_dispatches_wake_queue() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('wq_' || md5(NEW.queue), '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER job_dispatches_queued
    AFTER INSERT ON job_dispatches
    FOR EACH ROW WHEN (NEW.status = 'queued')
    EXECUTE FUNCTION job_dispatches_wake_queue();

CREATE TRIGGER job_dispatches_requeued
    AFTER UPDATE OF task_id, queue ON job_dispatches
    FOR EACH ROW WHEN (NEW.status = 'queued'
                       AND (OLD.task_id IS DISTINCT FROM NEW.task_id
                            OR OLD.queue IS DISTINCT FROM NEW.queue))
    EXECUTE FUNCTION job_dispatches_wake_queue();
