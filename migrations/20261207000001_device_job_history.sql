-- A device's page lists the jobs that ran on it, newest first.
CREATE INDEX job_device_results_device_idx ON job_device_results (device_id, job_id DESC);
