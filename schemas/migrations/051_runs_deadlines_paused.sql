-- 051_runs_deadlines_paused: the deadline sweep selects runs whose status is unfinished,
-- which since 050 includes 'paused'; the partial index it needs did not list 'paused', so
-- PostgreSQL could not use it and every sweep read every run ever kept (a sequential scan
-- of ratchet.runs every few seconds). The predicate now lists exactly the unfinished
-- statuses (engine/lang/run_status.h, RT_RUN_UNFINISHED_SQL; tests/unit/test_run_status.c).
drop index if exists ratchet.runs_deadlines;
create index runs_deadlines on ratchet.runs (least(deadline, start_deadline))
    where (deadline is not null or start_deadline is not null)
      and status in ('queued', 'awaiting_approval', 'running', 'sleeping', 'waiting', 'paused');
