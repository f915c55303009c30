-- A dispatch is found by its queue task when the monitor or a worker re-queues a task, and a
-- re-queued dispatch gets a new task id (one id per hand-over).
CREATE INDEX job_dispatches_task_idx ON job_dispatches (task_id);
