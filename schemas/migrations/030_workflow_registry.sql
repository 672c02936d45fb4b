-- 030_workflow_registry: the runtime workflow registry (docs/workflows.md "Registry").
-- workflow_versions (001) keeps every definition by content hash; this adds which one is
-- current per workflow, whether the workflow is removed or paused, every change with who
-- and when, and the run requests held while a workflow is paused.

create table ratchet.workflow_registry (
    workflow_id text primary key,
    hash        text references ratchet.workflow_versions (hash), -- current version
    source      text not null check (source in ('file', 'api')),
    file        text,              -- the file it was last synced from (source file)
    file_hash   text,              -- the version that file had then: an unchanged file is not re-applied
    removed     boolean not null default false,
    paused      boolean not null default false,
    paused_at   timestamptz,
    paused_by   text,
    updated_at  timestamptz not null default now()
);

-- One row per change: apply (a new current version), remove, pause, resume.
create table ratchet.workflow_changes (
    seq         bigserial primary key,
    workflow_id text not null,
    action      text not null check (action in ('apply', 'remove', 'pause', 'resume')),
    hash        text,              -- apply: the version that became current
    source      text,              -- apply: file | api
    actor       text not null,
    at          timestamptz not null default now(),
    details     jsonb
);
create index workflow_changes_by_workflow on ratchet.workflow_changes (workflow_id, seq);

-- Run requests that arrived while their workflow was paused (its events are stored in
-- ratchet.events as always). Resume starts them (on_resume run) or drops them (skip).
-- Cron ticks hold one row per trigger (hold_key "cron:<index>"): the latest tick wins.
create table ratchet.workflow_held (
    id             bigserial primary key,
    workflow_id    text not null,
    hold_key       text,
    trigger        jsonb not null,
    event          jsonb not null,
    run_at         timestamptz,
    dedupe_key     text,
    parent_run_id  uuid,
    parent_step_id text,
    held_at        timestamptz not null default now()
);
create unique index workflow_held_key on ratchet.workflow_held (workflow_id, hold_key);
create index workflow_held_by_workflow on ratchet.workflow_held (workflow_id, id);
