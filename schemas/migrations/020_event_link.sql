-- 020_event_link: a run started by an event names it, so listing an event's runs is an
-- index lookup and ingest no longer rewrites each event row after creating its runs.
alter table ratchet.runs add column event_id text;
create index runs_by_event on ratchet.runs (event_id) where event_id is not null;
update ratchet.runs set event_id = trigger->>'event_id' where trigger->>'event_id' is not null;
