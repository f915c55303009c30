-- Jobs may no longer be created without targets (a forgotten field used to mean every
-- device). Earlier such jobs targeted every enabled device, which `{}` now says explicitly,
-- so they read the same and can still be retried.
UPDATE jobs SET target_summary = '{}'::jsonb WHERE jsonb_typeof(target_summary) = 'null';
