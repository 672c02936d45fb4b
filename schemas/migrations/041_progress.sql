-- 041_progress: the latest progress a running step reported ({done, total, message,
-- attempt}; an exec step writes it to RATCHET_PROGRESS_FD), written at most once a second
-- per step by the engine that runs it (run/progress.c). Shown by `ratchet show`,
-- GET /api/v1/runs/{id} and the dashboard's run page.
alter table ratchet.steps add column progress jsonb, add column progress_at timestamptz;
