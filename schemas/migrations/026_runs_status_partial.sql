-- Runs by status, without the completed ones: completing a run changes its status, so the
-- update cannot be HOT and adds an entry to every index whose condition the new row meets;
-- completed runs (nearly all rows of a long-lived database) no longer get one here. What
-- reads by status still finds its rows: unfinished runs (dashboard, sweeps, admission) and
-- failed, cancelled, ... runs (`ratchet runs --status failed`) are in it; listing completed
-- runs walks runs_by_created, where nearly every row matches. The condition names the one
-- status it leaves out, so a new status needs no change here.
drop index ratchet.runs_by_status;
create index runs_by_status on ratchet.runs (status, created_at desc) where status <> 'completed';
