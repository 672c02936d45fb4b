-- Fencing token of a step: every claim of the step row by a worker (store.c S_CLAIM) adds
-- one, and the step hands it to the outside world (RATCHET_FENCE, X-Ratchet-Fence,
-- run.fence). A system that keeps the highest fence it saw per step key refuses a writer
-- that lost its lease while it was paused: that writer carries a lower fence.
alter table ratchet.steps add column fence bigint not null default 0;
