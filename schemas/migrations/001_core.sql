-- 001_core: pinned workflow definitions, runs, memoized step results, the runnable queue.
-- Everything lives in the schema "ratchet" so the app's own tables never collide with it.

create schema if not exists ratchet;

-- A run pins the exact definition it started with, by content hash.
create table ratchet.workflow_versions (
    hash        text primary key,
    workflow_id text not null,
    definition  jsonb not null,
    created_at  timestamptz not null default now()
);

create table ratchet.runs (
    id            uuid primary key,
    workflow_id   text not null,
    workflow_hash text not null references ratchet.workflow_versions (hash),
    status        text not null check (status in ('queued', 'awaiting_approval', 'running', 'sleeping',
                                                   'waiting', 'completed', 'partial', 'failed',
                                                   'cancelled', 'expired', 'timed_out', 'rejected')),
    trigger       jsonb not null,
    event         jsonb not null,
    entity_id     text,
    priority      smallint not null default 2,
    output        jsonb,
    error         text,
    created_at    timestamptz not null default now(),
    scheduled_at  timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz
) with (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05);

create index runs_by_created on ratchet.runs (created_at desc, id desc);
create index runs_by_workflow on ratchet.runs (workflow_id, created_at desc);
create index runs_by_status on ratchet.runs (status, created_at desc);

-- One row per step that has been scheduled; a completed row is final (memoized).
create table ratchet.steps (
    run_id       uuid not null references ratchet.runs (id) on delete cascade,
    step_id      text not null,
    status       text not null check (status in ('pending', 'running', 'completed', 'failed', 'skipped',
                                                  'retrying', 'sleeping', 'waiting')),
    attempts     int not null default 0,
    output       jsonb,
    error        text,
    error_detail jsonb,
    state        jsonb,
    started_at   timestamptz,
    finished_at  timestamptz,
    primary key (run_id, step_id)
) with (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05);

-- Every failed attempt, kept for `ratchet show` (a successful attempt lives in steps).
create table ratchet.step_attempts (
    run_id      uuid not null references ratchet.runs (id) on delete cascade,
    step_id     text not null,
    attempt     int not null,
    error       text,
    error_detail jsonb,
    started_at  timestamptz,
    finished_at timestamptz not null default now(),
    primary key (run_id, step_id, attempt)
);

-- Runnable work. A claim moves run_at to the lease's end, so one condition
-- (run_at <= now()) finds both due items and items whose lease expired.
create table ratchet.queue (
    id           bigserial primary key,
    run_id       uuid not null references ratchet.runs (id) on delete cascade,
    step_id      text not null,
    priority     smallint not null default 2,
    slow         boolean not null default false,
    run_at       timestamptz not null default now(),
    locked_by    text,
    locked_until timestamptz,
    unique (run_id, step_id)
) with (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 500,
        autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0.02);

create index queue_claim on ratchet.queue (slow, priority, run_at, id);

-- RFC 3339 UTC text with milliseconds, the one time format of the CLI and the API.
create function ratchet.ts(t timestamptz) returns text
    language sql immutable strict parallel safe
    as $$ select to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;
