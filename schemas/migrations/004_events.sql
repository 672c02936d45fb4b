-- 004_events: every ingested event, de-duplicated by its id, with the runs it started.
-- Deleted after RATCHET_EVENT_RETENTION by the engine, in small batches.
create table ratchet.events (
    id          text primary key,
    name        text not null,
    ts          timestamptz not null,
    envelope    jsonb not null,
    transport   text not null,
    received_at timestamptz not null default now(),
    run_ids     uuid[] not null default '{}'
) with (autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05);

create index events_by_received on ratchet.events (received_at desc);
create index events_by_name on ratchet.events (name, received_at desc);
