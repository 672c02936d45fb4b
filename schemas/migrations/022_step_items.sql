-- for_each: each finished item of a slow step (exec, http, sql) is memoized on its own,
-- committed as soon as it ends, so a crash or a retry runs only the items not here.
-- Only successes are kept: a failed item is tried again by the step's next attempt.
create table ratchet.step_items (
    run_id      uuid not null references ratchet.runs (id) on delete cascade,
    step_id     text not null,
    idx         int not null,
    item_md5    text not null, -- of the item (jsonb text): an array that changed is not reused
    output      jsonb,
    finished_at timestamptz not null default now(),
    primary key (run_id, step_id, idx)
);
