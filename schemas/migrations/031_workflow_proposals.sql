-- 031_workflow_proposals: a registry change an agent asks for (apply, remove, pause,
-- resume) waits here for a person's Ed25519-signed decision (docs/workflows.md
-- "Agents propose, people approve"). action_hash covers the workflow, the action and the
-- exact new definition (or, for remove/pause/resume, the version it acts on).
create table ratchet.workflow_proposals (
    id           uuid primary key,
    workflow_id  text not null,
    action       text not null check (action in ('apply', 'remove', 'pause', 'resume')),
    definition   jsonb,            -- apply: the proposed definition
    hash         text,             -- apply: its content hash; else the current version acted on
    base_hash    text,             -- the version current when it was proposed
    on_resume    text,
    action_hash  text not null,
    status       text not null default 'awaiting_approval'
                 check (status in ('awaiting_approval', 'approved', 'rejected')),
    requested_by text not null,    -- the agent token's actor ("agent:<label>")
    requester    text,             -- its holder / actor id: may not approve it
    entity_id    text,
    created_at   timestamptz not null default now(),
    decided_at   timestamptz,
    decided_by   text,
    comment      text
);
create index workflow_proposals_pending on ratchet.workflow_proposals (created_at) where status = 'awaiting_approval';
