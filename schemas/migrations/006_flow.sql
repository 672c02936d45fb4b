-- 006_flow: run deadlines (workflow timeout, start_timeout), concurrency keys, and the
-- parent of a child run (invoke).
alter table ratchet.runs
    add column deadline timestamptz,        -- timeout: past it an unfinished run is timed_out
    add column start_deadline timestamptz,  -- start_timeout: past it a still-queued run is expired
    add column ckey text,                   -- concurrency key value ("wf:<id>" without a key)
    add column climit int,                  -- at most this many running slow steps per ckey
    add column parent_run_id uuid,          -- invoke: the run waiting for this one
    add column parent_step_id text;

create index runs_deadlines on ratchet.runs (least(deadline, start_deadline))
    where (deadline is not null or start_deadline is not null)
      and status in ('queued', 'awaiting_approval', 'running', 'sleeping', 'waiting');

alter table ratchet.queue add column ckey text, add column climit int;
create index queue_ckey_leased on ratchet.queue (ckey) where ckey is not null and locked_by is not null;
