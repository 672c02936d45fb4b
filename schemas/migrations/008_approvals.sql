-- 008_approvals: the tamper-evident audit log (a hash chain), its daily checkpoints, the
-- approval gates of runs and of approval steps, and the nonces of signed decisions
-- (engine/audit.c, engine/approval.c, DESIGN §6).

-- One row per control action. hash = sha256(prev_hash || canonical record), appended under
-- a transaction-scoped advisory lock so concurrent writers keep one chain (engine/audit.c).
create table ratchet.audit_log (
    seq       bigint primary key,
    at        timestamptz not null,
    actor     text not null,
    action    text not null,
    subject   text not null default '',
    details   jsonb not null default '{}',
    prev_hash text not null,
    hash      text not null
);
create index audit_log_by_at on ratchet.audit_log (at, seq);
-- What became of a decision event (`ratchet approve` waits for it).
create index audit_log_by_event on ratchet.audit_log ((details->>'event_id')) where details ? 'event_id';

-- Append-only for everyone who goes through SQL normally. Someone who can bypass this
-- (a superuser: session_replication_role = replica) can still change rows: that is what
-- the chain and `ratchet audit verify` are for.
create function ratchet.audit_log_append_only() returns trigger
    language plpgsql as $$
begin
    raise exception 'ratchet.audit_log is append-only' using errcode = 'insufficient_privilege';
end $$;
create trigger audit_log_no_change before update or delete on ratchet.audit_log
    for each row execute function ratchet.audit_log_append_only();
create trigger audit_log_no_truncate before truncate on ratchet.audit_log
    for each statement execute function ratchet.audit_log_append_only();

-- The chain head as it was at a moment (workflows/audit-checkpoint.json, daily). `audit
-- verify` checks that the chain still holds every checkpointed record unchanged, which
-- also catches records cut off the end.
create table ratchet.audit_checkpoints (
    id   bigserial primary key,
    at   timestamptz not null default now(),
    seq  bigint not null,
    head text not null
);

-- One approval gate: the run's own (step_id '') or an approval step's.
create table ratchet.approvals (
    run_id       uuid not null references ratchet.runs (id) on delete cascade,
    step_id      text not null default '',
    workflow_id  text not null,
    action_hash  text not null,
    approvers    jsonb not null,          -- ids allowed to decide
    initiator    jsonb not null,          -- actor of the run's trigger event: never its approver
    details      jsonb,                   -- approval step: message/details shown to approvers
    status       text not null default 'pending'
                 check (status in ('pending', 'approved', 'rejected', 'expired', 'closed')),
    requested_at timestamptz not null default now(),
    expires_at   timestamptz,
    decided_at   timestamptz,
    decided_by   text,
    comment      text,
    decision     jsonb,
    primary key (run_id, step_id)
);
create index approvals_pending on ratchet.approvals (expires_at) where status = 'pending';

-- Every nonce of an authentic (correctly signed) decision, once.
create table ratchet.approval_nonces (
    approver text not null,
    nonce    text not null,
    run_id   uuid,
    used_at  timestamptz not null default now(),
    primary key (approver, nonce)
);
create index approval_nonces_by_use on ratchet.approval_nonces (used_at);
