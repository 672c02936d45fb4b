-- 051_unfinished_indexes: two statements select runs whose status is unfinished, which since
-- 050 includes 'paused': the deadline sweep and the singleton admission. The partial indexes
-- they need did not list 'paused', so PostgreSQL could not use them: every sweep read every
-- run ever kept (a sequential scan of ratchet.runs every few seconds), and every singleton
-- admission every run of its workflow. Their predicates now list exactly the unfinished
-- statuses (engine/lang/run_status.h, RT_RUN_UNFINISHED_SQL; tests/unit/test_run_status.c).
drop index if exists ratchet.runs_deadlines;
create index runs_deadlines on ratchet.runs (least(deadline, start_deadline))
    where (deadline is not null or start_deadline is not null)
      and status in ('queued', 'awaiting_approval', 'running', 'sleeping', 'waiting', 'paused');

drop index if exists ratchet.runs_singleton;
create index runs_singleton on ratchet.runs (workflow_id, (trigger #>> '{admission,singleton}'))
    where trigger #>> '{admission,singleton}' is not null
      and status in ('queued', 'awaiting_approval', 'running', 'sleeping', 'waiting', 'paused');
