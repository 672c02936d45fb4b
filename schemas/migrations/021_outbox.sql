-- 021_outbox: events the engine makes itself (ratchet.approval.requested, on_failure
-- events) are stored in the transaction that caused them, marked for publishing; the
-- engine then publishes them to the configured brokers and clears the mark (at least once;
-- consumers de-duplicate by event id).
alter table ratchet.events add column outbox boolean not null default false;
create index events_outbox on ratchet.events (received_at) where outbox;
