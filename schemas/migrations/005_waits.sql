-- 005_waits: runs suspended in a wait_for_event step, one row per awaited event name.
-- Ingest matches new events against them in its transaction; registration and ingest
-- serialize per event name with advisory locks so no event slips between them.
create table ratchet.waits (
    run_id     uuid not null references ratchet.runs (id) on delete cascade,
    step_id    text not null,
    name       text not null,
    if_expr    text,
    created_at timestamptz not null default now(),
    primary key (run_id, step_id, name)
);
create index waits_by_name on ratchet.waits (name);
