-- 007_admission: what decides whether (and when) a run is created — idempotency,
-- singleton, debounce, batch_events, throttle (engine/admission.c). The keys a run was
-- admitted under live in its trigger (trigger->'admission'), so the run row itself is the
-- record for singleton and for the pending debounce or batch run; these indexes find them.

-- Unfinished runs per singleton key value.
create index runs_singleton on ratchet.runs (workflow_id, (trigger #>> '{admission,singleton}'))
    where trigger #>> '{admission,singleton}' is not null
      and status in ('queued', 'awaiting_approval', 'running', 'sleeping', 'waiting');

-- The run a debounce window or an open batch collects into ("debounce:<key>", "batch").
create index runs_pending on ratchet.runs (workflow_id, (trigger #>> '{admission,pending}'), created_at desc)
    where trigger #>> '{admission,pending}' is not null and status = 'queued';

-- idempotency: one run per (workflow, value) per 24 h. A row older than 24 h no longer
-- counts (the check compares created_at) and is overwritten by the next request with that
-- value; admission deletes a few expired rows of the workflow on each insert, so the table
-- holds about one day of values without a janitor.
create table ratchet.idempotency_keys (
    workflow_id text not null,
    key         text not null,
    run_id      uuid,          -- the run started (or joined) for the value; null while being created
    created_at  timestamptz not null default now(),
    primary key (workflow_id, key)
);
create index idempotency_keys_expiry on ratchet.idempotency_keys (workflow_id, created_at);

-- throttle: GCRA state per (workflow, key value): the theoretical arrival time of the next
-- run. Updated with a row lock (insert ... on conflict do update), so processes agree.
create table ratchet.throttles (
    workflow_id text not null,
    key         text not null,
    tat         timestamptz not null,
    seen        timestamptz not null, -- time of the last request (the request time used by the update)
    primary key (workflow_id, key)
);
