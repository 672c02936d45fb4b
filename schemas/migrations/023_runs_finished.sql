-- Finished runs by time: the dashboard's throughput chart (GET /api/v1/stats) and the
-- failure-rate alert read the last minutes of it every few seconds.
create index runs_by_finished on ratchet.runs (finished_at) where finished_at is not null;
