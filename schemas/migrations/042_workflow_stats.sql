-- 042_workflow_stats: each workflow's last failure for GET /api/v1/stats/workflows and the
-- dashboard's workflows page (store_wfstats.c): one index probe per workflow, over failed
-- runs only (a workflow that never fails costs nothing).
create index runs_failed_by_workflow on ratchet.runs (workflow_id, finished_at desc)
    where status in ('failed', 'timed_out');
