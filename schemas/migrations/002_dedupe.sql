-- 002_dedupe: a run may carry a key that makes its creation idempotent per workflow:
-- a cron tick ("cron:<trigger>:<fire time>"), an event ("event:<event id>"), or a
-- caller's idempotency key. A second creation with the same key creates nothing.
alter table ratchet.runs add column dedupe_key text;
create unique index runs_dedupe on ratchet.runs (workflow_id, dedupe_key) where dedupe_key is not null;
