-- 050_run_pause: a run can be paused (ratchet pause RUN, POST /api/v1/runs/{id}/pause).
-- A paused run is unfinished; it starts no new step until resumed. Its idle queue items
-- are pushed RT_PAUSE_SHIFT (100 years) into the future while it is paused and pulled
-- back on resume (engine/store/store_runctl.c), so no worker keeps waking for them.
alter table ratchet.runs drop constraint runs_status_check;
alter table ratchet.runs add constraint runs_status_check
    check (status in ('queued', 'awaiting_approval', 'running', 'sleeping', 'waiting', 'paused',
                      'completed', 'partial', 'failed', 'cancelled', 'expired', 'timed_out', 'rejected'));
