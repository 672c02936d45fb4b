-- 003_schedules: one row per cron trigger of a loaded workflow, and the pause state of
-- workflows. `serve` syncs the rows from the workflow files it loaded; the schedulers
-- claim due rows with FOR UPDATE SKIP LOCKED and move next_fire_at forward in the same
-- transaction that creates the tick's run. A pause lives in its own table so that it
-- survives restarts, file edits and the deletion and re-creation of schedule rows.

create table ratchet.schedules (
    workflow_id   text not null,
    trigger_index int not null check (trigger_index >= 0),
    cron          text not null,
    timezone      text not null default 'UTC',
    catch_up      text not null default 'latest' check (catch_up in ('latest', 'all', 'none')),
    enabled       boolean not null default true,
    next_fire_at  timestamptz,           -- null: never (disabled, or an expression that cannot fire)
    last_fire_at  timestamptz,           -- the tick of the last run created
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    primary key (workflow_id, trigger_index)
);

-- The schedulers' two questions, "what is due" and "when is the next one", walk this.
create index schedules_next_fire on ratchet.schedules (next_fire_at) where enabled and next_fire_at is not null;

create table ratchet.schedule_pauses (
    workflow_id text primary key,
    paused_at   timestamptz not null default now(),
    paused_by   text
);
