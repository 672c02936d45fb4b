/* store.c — every SQL statement of ratchet, each prepared once per connection and run
 * with parameters (never interpolated). Batches travel as one jsonb parameter so a whole
 * batch of completions costs a handful of round trips and one commit. */
#include "store.h"

#include <errno.h>
#include <stdarg.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "log.h"
#include "metrics.h"
#include "run_status.h"
#include "migrations.h"
#include "store_runctl.h"
#include "util.h"

typedef enum stmt_id {
    S_PUT_WORKFLOW,
    S_GET_DEFINITION,
    S_CREATE_RUNS,
    S_CREATE_STEPS,
    S_CREATE_QUEUE,
    S_GET_RUN,
    S_GET_RUN_STEPS,
    S_LIST_RUNS,
    S_CLAIM_PICK,
    S_CKEY_LOCK,
    S_CKEY_COUNT,
    S_DEFER,
    S_CLAIM,
    S_CLAIM_QUICK,
    S_SLOW_DUE,
    S_CLAIM_CREATED,
    S_MARK_RUNNING,
    S_LOAD_STEPS,
    S_LOCK_RUNS,
    S_LOCK_STEPS,
    S_LOCK_OWNED,
    S_APPLY_STEPS,
    S_APPLY_ENQUEUE,
    S_APPLY_HOT,
    S_APPLY_REQUEUE,
    S_APPLY_ATTEMPTS,
    S_APPLY_DROP,
    S_NOTIFY,
    S_RENEW,
    S_RELEASE,
    S_NEXT_DUE,
    S_INSERT_EVENTS,
    S_LIST_EVENTS,
    S_DELETE_OLD_EVENTS,
    S_LOCK_EVENT_NAMES_SHARED,
    S_LOCK_EVENT_NAMES,
    S_EVENTS_SINCE,
    S_INSERT_WAITS,
    S_APPLY_UNWAIT,
    S_FIND_WAITS,
    S_MATCH_WAITS_DELETE,
    S_MATCH_WAITS_STEPS,
    S_MATCH_WAITS_QUEUE,
    S_ACTIVE_RUNS,
    S_CANCEL_RUNS,
    S_CANCEL_QUEUE,
    S_WAKE_STEPS,
    S_WAKE_QUEUE,
    S_SWEEP_DEADLINES,
    S_RUN_SOURCE,
    S_COUNT_EVENTS,
    S_DELETE_OLD_RUNS,
    S_ITEMS_LOAD,
    S_ITEM_SAVE,
    S_OUTBOX_TAKE,
    S_OUTBOX_DONE,
    S_BENCH_LATENCY,
    S_BENCH_LATENCY_DONE,
    S_COUNT
} stmt_id;

#define BENCH_LATENCY_SQL(col)                                                                        \
    "select count(*), coalesce(percentile_cont(0.5) within group (order by lat), 0),"                   \
    " coalesce(percentile_cont(0.99) within group (order by lat), 0) from ("                            \
    " select extract(epoch from s." col ") * 1000"                                                      \
    "  - (r.event->'data'->>'sent_us')::double precision / 1000 as lat"                                 \
    " from ratchet.runs r join ratchet.steps s on s.run_id = r.id and s.status = 'completed'"           \
    " where r.created_at >= " TS("$1::bigint") ") t"

/* A batch's ids as an array, so a statement probes the table's index for them: joined
 * to jsonb_to_recordset (estimated at 100 rows whatever the batch) the planner prefers a
 * sequential scan of the whole table, which grows with every run ever kept. */
#define JSON_IDS(param, type) "array(select jsonb_array_elements_text(" param "::jsonb)::" type ")"
#define JSON_KEYS(param, key, type) "array(select (e->>'" key "')::" type " from jsonb_array_elements(" param "::jsonb) e)"

/* The runs of the items a quick claim locked (its CTE q), as an array: runs are then
 * probed by primary key for them, and steps by the joined rows. Joined to the CTE alone, a
 * generic plan (the limit is a parameter, so the CTE looks large) hashes it against a
 * sequential scan of the whole table, which grows with every run ever kept. (Not on the
 * steps join too: an index scan per row with an array key sorts the array on every
 * rescan.) */
#define CLAIMED_RUNS "array(select run_id from q)"

/* 1 when a slow item is due, else 0: ordered like S_CLAIM_PICK so the plan is the same
 * index probe whatever the statistics say. */
#define SLOW_DUE_SQL                                                                                          \
    "(select count(*) from (select 1 from ratchet.queue q0 where q0.slow and q0.run_at <= now()"             \
    " order by q0.slow, q0.priority, q0.run_at, q0.id limit 1) t0)"

/* "Due now" for a queue item q woken by an event or a child run: unless its run is
 * paused, then it waits, shifted like the pause's other items, for the resume. */
#define RT_DUE_NOW_SQL                                                                                        \
    "now() + case when exists (select 1 from ratchet.runs r where r.id = q.run_id and r.status = 'paused')"   \
    " then " RT_RUN_PAUSE_SHIFT_MS_SQL " else 0 end * interval '1 millisecond'"

/* Times cross the boundary as unix milliseconds. */
#define MS(col) "(extract(epoch from " col ") * 1000)::bigint"
#define TS(x) "to_timestamp((" x ")::double precision / 1000)"

/* Completion writes (rt_store_apply). Steps: memoized rows, upserted. */
#define APPLY_STEPS_SQL(p)                                                                                    \
    "insert into ratchet.steps as s (run_id, step_id, status, attempts, output, error, error_detail, state,"  \
    " started_at, finished_at) "                                                                            \
    "select x.run_id, x.step_id, x.status, coalesce(x.attempts, 0), x.output, x.error, x.error_detail,"      \
    " x.state, case when x.started_at > 0 then " TS("x.started_at") " end,"                                 \
    " case when x.finished_at > 0 then " TS("x.finished_at") " end "                                        \
    "from jsonb_to_recordset(" p "::jsonb) as x(run_id uuid, step_id text, status text, attempts int,"       \
    " output jsonb, error text, error_detail jsonb, state jsonb, started_at bigint, finished_at bigint) "    \
    "on conflict (run_id, step_id) do update set status = excluded.status,"                                 \
    " attempts = greatest(s.attempts, excluded.attempts), output = excluded.output, error = excluded.error," \
    " error_detail = excluded.error_detail, state = excluded.state,"                                        \
    " started_at = case when s.state is not null then s.started_at"                                         \
    "  else coalesce(excluded.started_at, s.started_at) end,"                                               \
    " finished_at = excluded.finished_at"
/* Finished queue items; locked_by is null for quick items, which this transaction holds
 * locked. */
#define APPLY_DEQUEUE_SQL(ids, owner)                                                                         \
    "delete from ratchet.queue where id = any(" JSON_IDS(ids, "bigint") ")"                                  \
    " and (locked_by = " owner " or locked_by is null)"
/* Runs that advanced or ended. */
#define APPLY_RUNS_SQL(p)                                                                                     \
    "update ratchet.runs r set status = x.status,"                                                          \
    " output = case when x.finished_at > 0 then x.output else r.output end,"                                \
    " error = coalesce(x.error, r.error),"                                                                  \
    " started_at = coalesce(r.started_at, case when x.started_at > 0 then " TS("x.started_at") " end),"     \
    " finished_at = case when x.finished_at > 0 then " TS("x.finished_at") " else r.finished_at end "      \
    "from jsonb_to_recordset(" p "::jsonb) as x(id uuid, status text, output jsonb, error text,"            \
    " started_at bigint, finished_at bigint) where r.id = x.id and r.id = any(" JSON_KEYS(p, "id", "uuid") ")"

static const char *const stmt_sql[S_COUNT] = {
    [S_PUT_WORKFLOW] = "insert into ratchet.workflow_versions (hash, workflow_id, definition) "
                       "values ($1, $2, $3::jsonb) on conflict (hash) do nothing",
    [S_GET_DEFINITION] = "select definition from ratchet.workflow_versions where hash = $1",
    [S_CREATE_RUNS] =
        "insert into ratchet.runs (id, workflow_id, workflow_hash, status, trigger, event, entity_id, priority,"
        " scheduled_at, dedupe_key, deadline, start_deadline, ckey, climit, parent_run_id, parent_step_id, event_id) "
        "select x.id, x.workflow_id, x.workflow_hash, 'queued', x.trigger, x.event, x.event->>'entity_id',"
        " x.priority, case when x.run_at > 0 then " TS("x.run_at") " end, x.dedupe_key,"
        " case when x.timeout > 0 then coalesce(" TS("nullif(x.run_at, 0)") ", now()) + x.timeout * interval '1 millisecond' end,"
        " case when x.start_timeout > 0 then coalesce(" TS("nullif(x.run_at, 0)") ", now()) + x.start_timeout * interval '1 millisecond' end,"
        " x.ckey, x.climit, x.parent_run_id, x.parent_step_id, x.trigger->>'event_id' "
        "from jsonb_to_recordset($1::jsonb) as x(id uuid, workflow_id text, workflow_hash text, trigger jsonb,"
        " event jsonb, priority smallint, run_at bigint, dedupe_key text, timeout bigint, start_timeout bigint,"
        " ckey text, climit int, parent_run_id uuid, parent_step_id text) "
        "on conflict (workflow_id, dedupe_key) where dedupe_key is not null do nothing "
        "returning id::text",
    /* Steps and queue items only for the runs that were created (not deduplicated). */
    [S_CREATE_STEPS] = "insert into ratchet.steps (run_id, step_id, status) "
                       "select x.run_id, x.step_id, 'pending' "
                       "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text) "
                       "where x.run_id = any($2::uuid[])",
    [S_CREATE_QUEUE] =
        "insert into ratchet.queue (run_id, step_id, priority, slow, run_at, ckey, climit) "
        "select x.run_id, x.step_id, x.priority, x.slow, case when x.run_at > 0 then " TS("x.run_at") " else now() end,"
        " x.ckey, x.climit "
        "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text, priority smallint, slow boolean,"
        " run_at bigint, ckey text, climit int) where x.run_id = any($2::uuid[])",
    [S_GET_RUN] = "select jsonb_build_object('id', r.id, 'workflow', r.workflow_id, 'version', r.workflow_hash,"
                  " 'status', r.status,"
                  " 'trigger', r.trigger, 'created_at', ratchet.ts(r.created_at),"
                  " 'started_at', ratchet.ts(r.started_at), 'finished_at', ratchet.ts(r.finished_at),"
                  " 'output', r.output, 'error', r.error)::text "
                  "from ratchet.runs r where r.id = $1::uuid",
    [S_GET_RUN_STEPS] =
        "select coalesce(jsonb_agg(jsonb_build_object('id', d.value->>'id', 'status', coalesce(s.status, 'pending'),"
        " 'attempts', coalesce(s.attempts, 0), 'output', s.output, 'error', s.error,"
        " 'started_at', ratchet.ts(s.started_at), 'finished_at', ratchet.ts(s.finished_at),"
        " 'progress', s.progress, 'progress_at', ratchet.ts(s.progress_at),"
        " 'failed_attempts', (select coalesce(jsonb_agg(jsonb_build_object('attempt', a.attempt, 'error', a.error,"
        "   'started_at', ratchet.ts(a.started_at), 'finished_at', ratchet.ts(a.finished_at)) order by a.attempt),"
        "   '[]') from ratchet.step_attempts a where a.run_id = r.id and a.step_id = d.value->>'id'))"
        " || case when d.value ? 'for_each' then jsonb_build_object('items_done', (select count(*)"
        "   from ratchet.step_items i where i.run_id = r.id and i.step_id = d.value->>'id')) else '{}' end"
        " order by d.ord), '[]')::text "
        "from ratchet.runs r join ratchet.workflow_versions v on v.hash = r.workflow_hash "
        "cross join jsonb_array_elements(v.definition->'steps') with ordinality as d(value, ord) "
        "left join ratchet.steps s on s.run_id = r.id and s.step_id = d.value->>'id' "
        "where r.id = $1::uuid",
    [S_LIST_RUNS] = "select coalesce(jsonb_agg(o order by c desc, i desc), '[]')::text from ("
                    " select jsonb_build_object('id', r.id, 'workflow', r.workflow_id, 'status', r.status,"
                    " 'trigger', r.trigger, 'created_at', ratchet.ts(r.created_at),"
                    " 'started_at', ratchet.ts(r.started_at), 'finished_at', ratchet.ts(r.finished_at),"
                    " 'output', r.output, 'error', r.error) o, r.created_at c, r.id i"
                    " from ratchet.runs r"
                    " where ($1::text is null or r.workflow_id = $1) and ($2::text is null or r.status = $2)"
                    " order by r.created_at desc, r.id desc limit $3::int) t",
    /* Slow items (exec, http, sql), in one transaction: pick (skipping keys whose running
     * count is at their concurrency limit, and items of paused runs), re-check the key
     * under its advisory lock, then lease to owner (the lease is their run_at) and mark the
     * step rows running (made here if missing, like the quick claim's left join). */
    [S_CLAIM_PICK] =
        "select q.id, q.ckey, coalesce(q.climit, 0) from ratchet.queue q where q.slow and q.run_at <= now()"
        " and not exists (select 1 from ratchet.runs r where r.id = q.run_id and (r.status = 'paused'"
        "  or (r.status = 'queued' and r.start_deadline < now())))"
        " and (q.ckey is null or (select count(*) from ratchet.queue q2 where q2.ckey = q.ckey"
        " and q2.locked_by is not null and q2.run_at > now()) < q.climit)"
        " order by q.slow, q.priority, q.run_at, q.id limit $1::int for update of q skip locked",
    [S_CKEY_LOCK] = "select pg_advisory_xact_lock(hashtext('ratchet.ckey:' || $1))",
    [S_CKEY_COUNT] = "select count(*) from ratchet.queue where ckey = $1 and locked_by is not null"
                     " and run_at > now() and id <> $2::bigint",
    [S_DEFER] = "update ratchet.queue set run_at = now() + interval '200 milliseconds' where id = $1::bigint",
    [S_CLAIM] =
        "with c as (select unnest($1::bigint[]) as id"
        "), q as ("
        " update ratchet.queue q set run_at = now() + $2::bigint * interval '1 millisecond',"
        "  locked_until = now() + $2::bigint * interval '1 millisecond', locked_by = $3"
        " from c where q.id = c.id returning q.id, q.run_id, q.step_id, q.priority, q.slow"
        "), s as ("
        " insert into ratchet.steps as s (run_id, step_id, status, attempts, started_at, fence)"
        " select q.run_id, q.step_id, 'running', 1, now(), 1 from q"
        " on conflict (run_id, step_id) do update set status = 'running',"
        "  attempts = s.attempts + case when s.state is null then 1 else 0 end,"
        "  started_at = case when s.state is null then now() else s.started_at end,"
        "  fence = s.fence + 1"
        " returning s.run_id, s.step_id, s.attempts, s.state, s.fence"
        ") "
        "select q.id, q.run_id, q.step_id, r.workflow_id, r.workflow_hash, r.status, s.attempts, s.state::text,"
        " r.event::text, r.trigger::text, " MS("r.created_at") ", coalesce(" MS("r.started_at") ", 0),"
        " q.priority, q.slow, r.ckey, coalesce(r.climit, 0), r.parent_run_id::text, r.parent_step_id, s.fence "
        "from q join s on s.run_id = q.run_id and s.step_id = q.step_id join ratchet.runs r on r.id = q.run_id "
        "order by q.priority, q.id",
    /* Quick items: only locked, inside the caller's transaction, which also completes
     * them; nothing is written for the claim itself. (A step row is left-joined: every
     * path that enqueues writes one, but a claim must not silently skip an item without.) Their runs are locked too, in id
     * order (rows are locked after the sort) so completions never deadlock; a run locked
     * by another transaction is waited for and its status read as that one left it (a run
     * paused meanwhile reads 'paused': the executor then leaves its item alone). */
    [S_CLAIM_QUICK] =
        "with q as ("
        " select id, run_id, step_id, priority, slow from ratchet.queue where not slow and run_at <= now()"
        " and not exists (select 1 from ratchet.runs r where r.id = run_id and (r.status = 'paused'"
        "  or (r.status = 'queued' and r.start_deadline < now())))"
        " order by slow, priority, run_at, id limit $1::int for update skip locked"
        ") "
        "select q.id, q.run_id, q.step_id, r.workflow_id, r.workflow_hash, r.status,"
        " coalesce(s.attempts, 0) + case when s.state is null then 1 else 0 end, s.state::text,"
        " r.event::text, r.trigger::text, " MS("r.created_at") ", coalesce(" MS("r.started_at") ", 0),"
        " q.priority, q.slow, r.ckey, coalesce(r.climit, 0), r.parent_run_id::text, r.parent_step_id,"
        " coalesce(s.fence, 0), " SLOW_DUE_SQL " "
        "from q join ratchet.runs r on r.id = q.run_id and r.id = any(" CLAIMED_RUNS ")"
        " left join ratchet.steps s on s.run_id = q.run_id and s.step_id = q.step_id "
        "order by r.id, q.priority, q.id for update of r",
    [S_SLOW_DUE] = "select " SLOW_DUE_SQL,
    /* The due quick items of runs this transaction created (rt_store_claim_created): the
     * same columns as S_CLAIM_QUICK. Runs under a concurrency key wait for a worker. */
    [S_CLAIM_CREATED] =
        "with q as (select id, run_id, step_id, priority, slow from ratchet.queue"
        " where run_id = any($1::uuid[]) and not slow and run_at <= now() order by id for update) "
        "select q.id, q.run_id, q.step_id, r.workflow_id, r.workflow_hash, r.status,"
        " coalesce(s.attempts, 0) + case when s.state is null then 1 else 0 end, s.state::text,"
        " r.event::text, r.trigger::text, " MS("r.created_at") ", coalesce(" MS("r.started_at") ", 0),"
        " q.priority, q.slow, r.ckey, coalesce(r.climit, 0), r.parent_run_id::text, r.parent_step_id,"
        " coalesce(s.fence, 0) "
        "from q join ratchet.runs r on r.id = q.run_id and r.status = 'queued' and r.ckey is null"
        " left join ratchet.steps s on s.run_id = q.run_id and s.step_id = q.step_id "
        "order by r.id, q.priority, q.id for update of r",
    [S_MARK_RUNNING] = "update ratchet.runs set status = 'running', started_at = coalesce(started_at, now()) "
                       "where id in (select id from ratchet.runs where id = any($1::uuid[])"
                       " and status in ('queued', 'sleeping', 'waiting') order by id for update)",
    [S_LOAD_STEPS] = "select run_id::text, jsonb_object_agg(step_id,"
                     " jsonb_build_object('status', status, 'output', output))::text "
                     "from ratchet.steps where run_id = any($1::uuid[]) group by run_id",
    [S_LOCK_RUNS] = "select id::text, status from ratchet.runs where id = any($1::uuid[]) order by id for update",
    [S_LOCK_STEPS] = "select run_id::text, jsonb_object_agg(step_id,"
                     " jsonb_build_object('status', status, 'output', output))::text "
                     "from ratchet.steps where run_id = any($1::uuid[]) group by run_id",
    [S_LOCK_OWNED] = "select coalesce(jsonb_agg(id), '[]')::text from (select id from ratchet.queue"
                     " where id = any($1::bigint[]) and locked_by = $2 order by id for update) t",
    [S_APPLY_STEPS] = APPLY_STEPS_SQL("$1"),
    [S_APPLY_ENQUEUE] =
        "insert into ratchet.queue (run_id, step_id, priority, slow, run_at, ckey, climit) "
        "select x.run_id, x.step_id, x.priority, x.slow, case when x.run_at > 0 then " TS("x.run_at") " else now() end,"
        " x.ckey, x.climit "
        "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text, priority smallint, slow boolean,"
        " run_at bigint, ckey text, climit int) on conflict (run_id, step_id) do nothing",
    /* The three writes every completion makes, in one round trip (writable CTEs: each
     * runs once, to completion, on its own table). */
    [S_APPLY_HOT] = "with s as (" APPLY_STEPS_SQL("$1") "), d as (" APPLY_DEQUEUE_SQL("$2", "$3") "),"
                    " r as (" APPLY_RUNS_SQL("$4") ") select 1",
    [S_APPLY_REQUEUE] = "update ratchet.queue q set run_at = greatest(now(), " TS("x.run_at") "),"
                        " locked_by = null, locked_until = null "
                        "from jsonb_to_recordset($1::jsonb) as x(id bigint, run_at bigint) "
                        "where q.id = x.id and q.id = any(" JSON_KEYS("$1", "id", "bigint") ")"
                        " and (q.locked_by = $2 or q.locked_by is null)",
    [S_APPLY_ATTEMPTS] =
        "insert into ratchet.step_attempts (run_id, step_id, attempt, error, error_detail, started_at, finished_at) "
        "select x.run_id, x.step_id, x.attempt, x.error, x.error_detail,"
        " case when x.started_at > 0 then " TS("x.started_at") " end, " TS("x.finished_at") " "
        "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text, attempt int, error text,"
        " error_detail jsonb, started_at bigint, finished_at bigint) on conflict do nothing",
    /* SKIP LOCKED: an item another transaction holds is dropped when it is claimed. */
    [S_APPLY_DROP] = "delete from ratchet.queue where id in (select id from ratchet.queue"
                     " where run_id = any(" JSON_IDS("$1", "uuid") ") and locked_by is null"
                     " for update skip locked)",
    [S_NOTIFY] = "select pg_notify('" RT_WAKE_CHANNEL "', '')",
    [S_RENEW] = "update ratchet.queue q set run_at = now() + $3::bigint * interval '1 millisecond',"
                " locked_until = now() + $3::bigint * interval '1 millisecond' from ratchet.runs r "
                "where q.id = any($1::bigint[]) and q.locked_by = $2 and r.id = q.run_id "
                "returning r.status in ('cancelled', 'failed', 'timed_out', 'expired', 'rejected')",
    [S_RELEASE] = "with r as (update ratchet.queue set run_at = now(), locked_by = null, locked_until = null"
                  " where starts_with(locked_by, $1) returning 1) select count(*) from r",
    /* One index probe per (slow, priority) pair of queue_claim instead of a scan. */
    [S_NEXT_DUE] = "select coalesce(" MS("min(t)") ", 0), coalesce(" MS("min(f)") ", 0) from ("
                   " select (select min(run_at) from ratchet.queue where slow = k.slow and priority = k.priority) t,"
                   " (select min(run_at) from ratchet.queue where slow = k.slow and priority = k.priority"
                   "  and run_at > now()) f"
                   " from (values (false, 0), (false, 1), (false, 2), (false, 3), (true, 0), (true, 1), (true, 2),"
                   " (true, 3)) as k(slow, priority)) m",
    [S_INSERT_EVENTS] =
        "insert into ratchet.events (id, name, ts, envelope, transport, outbox) "
        "select x.id, x.name, " TS("x.ts") ", x.envelope, x.transport, x.transport = 'engine' "
        "from jsonb_to_recordset($1::jsonb) as x(id text, name text, ts bigint, envelope jsonb, transport text) "
        "on conflict (id) do nothing returning id",
    [S_LIST_EVENTS] =
        "select coalesce(jsonb_agg(o order by rcv desc, eid desc), '[]')::text from ("
        " select jsonb_build_object('id', e.id, 'name', e.name, 'ts', ratchet.ts(e.ts),"
        "  'received_at', ratchet.ts(e.received_at), 'transport', e.transport,"
        "  'actor', e.envelope->'actor', 'entity_id', e.envelope->'entity_id', 'data', e.envelope->'data',"
        "  'runs', (select coalesce(jsonb_agg(jsonb_build_object('id', r.id, 'workflow', r.workflow_id,"
        "   'status', r.status) order by r.workflow_id), '[]') from ratchet.runs r where r.event_id = e.id)"
        " ) o, e.received_at rcv, e.id eid from ratchet.events e"
        " where ($1::text is null or e.name = $1) order by e.received_at desc, e.id desc limit $2::int) t",
    /* Finished runs only; their steps, attempts, items and approvals go with them. */
    [S_DELETE_OLD_RUNS] =
        "with d as (delete from ratchet.runs where id in (select id from ratchet.runs"
        " where finished_at < now() - $1::bigint * interval '1 millisecond' and status in"
        " ('completed', 'partial', 'failed', 'cancelled', 'expired', 'timed_out', 'rejected')"
        " limit $2::int for update skip locked) returning 1) select count(*) from d",
    [S_DELETE_OLD_EVENTS] =
        "with d as (delete from ratchet.events where id in (select id from ratchet.events"
        " where received_at < now() - $1::bigint * interval '1 millisecond' limit $2::int)"
        " returning 1) select count(*) from d",
    /* Ingest (shared) and wait registration (exclusive) serialize per event name. */
    [S_LOCK_EVENT_NAMES_SHARED] = "select count(pg_advisory_xact_lock_shared(hashtext('ratchet.event:' || n)))"
                                  " from (select distinct unnest($1::text[]) n order by 1) t",
    [S_LOCK_EVENT_NAMES] = "select count(pg_advisory_xact_lock(hashtext('ratchet.event:' || n)))"
                           " from (select distinct unnest($1::text[]) n order by 1) t",
    [S_EVENTS_SINCE] = "select coalesce(jsonb_agg(envelope order by received_at, id), '[]')::text from ("
                       " select envelope, received_at, id from ratchet.events where name = any($1::text[])"
                       " and received_at >= " TS("$2::bigint") " order by received_at, id limit 1000) t",
    [S_INSERT_WAITS] = "insert into ratchet.waits (run_id, step_id, name, if_expr) "
                       "select x.run_id, x.step_id, x.name, x.if_expr "
                       "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text, name text, if_expr text) "
                       "on conflict do nothing",
    /* SKIP LOCKED: a wait an ingest is matching right now is deleted by that ingest. */
    [S_APPLY_UNWAIT] = "delete from ratchet.waits where ctid in (select w.ctid from ratchet.waits w"
                       " join jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text)"
                       " on w.run_id = x.run_id and w.step_id = x.step_id for update of w skip locked)",
    [S_FIND_WAITS] = "select coalesce(jsonb_agg(jsonb_build_object('run_id', w.run_id, 'step_id', w.step_id,"
                     " 'name', w.name, 'if', w.if_expr, 'event', r.event, 'workflow', r.workflow_id)"
                     " order by w.created_at, w.run_id), '[]')::text"
                     " from ratchet.waits w join ratchet.runs r on r.id = w.run_id where w.name = any($1::text[])",
    [S_MATCH_WAITS_DELETE] = "with d as (delete from ratchet.waits w"
                             " using jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text)"
                             " where w.run_id = x.run_id and w.step_id = x.step_id returning w.run_id, w.step_id) "
                             "select coalesce(jsonb_agg(distinct jsonb_build_object('run_id', d.run_id,"
                             " 'step_id', d.step_id)), '[]')::text from d",
    [S_MATCH_WAITS_STEPS] = "update ratchet.steps s set state = coalesce(s.state, '{}'::jsonb)"
                            " || jsonb_build_object('matched', x.envelope) "
                            "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text, envelope jsonb) "
                            "where s.run_id = x.run_id and s.step_id = x.step_id and s.status = 'waiting'",
    [S_MATCH_WAITS_QUEUE] = "update ratchet.queue q set run_at = " RT_DUE_NOW_SQL " "
                            "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text) "
                            "where q.run_id = x.run_id and q.step_id = x.step_id and q.locked_by is null",
    [S_ACTIVE_RUNS] = "select coalesce(jsonb_agg(jsonb_build_object('id', id, 'workflow', workflow_id,"
                      " 'event', event) order by id), '[]')::text from (select id, workflow_id, event"
                      " from ratchet.runs where workflow_id = any($1::text[]) and status in"
                      " " RT_RUN_UNFINISHED_SQL " order by id for update) t",
    [S_CANCEL_RUNS] = "update ratchet.runs r set status = 'cancelled', error = x.error, finished_at = now() "
                      "from jsonb_to_recordset($1::jsonb) as x(id uuid, error text) where r.id = x.id"
                      " and r.status in " RT_RUN_UNFINISHED_SQL,
    [S_CANCEL_QUEUE] = "delete from ratchet.queue where id in (select q.id from ratchet.queue q"
                       " join jsonb_to_recordset($1::jsonb) as x(id uuid) on q.run_id = x.id"
                       " where q.locked_by is null for update of q skip locked)",
    /* A suspended step (invoke) gets what it waited for and is due now. */
    [S_WAKE_STEPS] = "update ratchet.steps s set state = coalesce(s.state, '{}'::jsonb) || x.patch "
                     "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text, patch jsonb) "
                     "where s.run_id = x.run_id and s.step_id = x.step_id and s.status = 'waiting'",
    [S_WAKE_QUEUE] = "update ratchet.queue q set run_at = " RT_DUE_NOW_SQL " "
                     "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text) "
                     "where q.run_id = x.run_id and q.step_id = x.step_id and q.locked_by is null",
    [S_SWEEP_DEADLINES] =
        "with d as (select id from ratchet.runs"
        " where least(deadline, start_deadline) < now()"
        " and status in " RT_RUN_UNFINISHED_SQL
        " and (deadline < now() or (status = 'queued' and start_deadline < now()))"
        " order by id limit 100 for update skip locked"
        "), u as (update ratchet.runs r set"
        " status = case when r.deadline < now() then 'timed_out' else 'expired' end, finished_at = now(),"
        " error = case when r.deadline < now() then 'timed out: the workflow timeout passed'"
        "  else 'expired: not started before start_timeout' end"
        " from d where r.id = d.id"
        " returning r.id, r.workflow_id, r.status, r.error, r.parent_run_id, r.parent_step_id, r.event, r.trigger,"
        " r.created_at"
        "), q as (delete from ratchet.queue where id in (select q.id from ratchet.queue q join u on q.run_id = u.id"
        " where q.locked_by is null for update of q skip locked)) "
        "select coalesce(jsonb_agg(jsonb_build_object('id', u.id, 'workflow', u.workflow_id, 'status', u.status,"
        " 'error', u.error, 'parent_run_id', u.parent_run_id, 'parent_step_id', u.parent_step_id, 'event', u.event,"
        " 'trigger', u.trigger, 'created_ms', (extract(epoch from u.created_at) * 1000)::bigint)), '[]')::text from u",
    [S_RUN_SOURCE] = "select jsonb_build_object('workflow_hash', workflow_hash, 'workflow', workflow_id,"
                     " 'event', event, 'trigger', trigger, 'status', status)::text from ratchet.runs where id = $1::uuid",
    [S_OUTBOX_TAKE] = "select coalesce(jsonb_agg(jsonb_build_object('id', id, 'name', name, 'envelope', envelope)"
                      " order by received_at), '[]')::text from (select id, name, envelope, received_at"
                      " from ratchet.events where outbox order by received_at limit $1::int for update skip locked) t",
    [S_OUTBOX_DONE] = "update ratchet.events set outbox = false where id = any($1::text[])",
    [S_COUNT_EVENTS] = "select count(*) from ratchet.events where name = $1",
    /* Only items whose value is still the one memoized at that index. */
    [S_ITEMS_LOAD] = "select coalesce(jsonb_object_agg(s.idx::text, s.output), '{}')::text from ratchet.step_items s"
                     " where s.run_id = $1::uuid and s.step_id = $2"
                     " and s.item_md5 = md5((($3::jsonb) -> s.idx)::text)",
    /* Only while the lease is ours (the queue row is share-locked, so a claim by another
     * worker waits for this statement): a worker that lost it must not write. Answers
     * whether the lease was held. */
    [S_ITEM_SAVE] = "with l as (select 1 from ratchet.queue where id = $1::bigint and locked_by = $2 for share),"
                    " i as (insert into ratchet.step_items (run_id, step_id, idx, item_md5, output)"
                    "  select $3::uuid, $4, $5::int, md5(($7::jsonb)::text), $6::jsonb where exists (select 1 from l)"
                    "  on conflict (run_id, step_id, idx) do update set item_md5 = excluded.item_md5,"
                    "  output = excluded.output, finished_at = now() returning 1)"
                    " select (select count(*) from l), (select count(*) from i)",
    /* bench events: ms from the publisher's clock (data.sent_us) to the first step
     * starting (S_BENCH_LATENCY) or finishing, i.e. committed (S_BENCH_LATENCY_DONE). */
    [S_BENCH_LATENCY] = BENCH_LATENCY_SQL("started_at"),
    [S_BENCH_LATENCY_DONE] = BENCH_LATENCY_SQL("finished_at"),
};

struct rt_store {
    PGconn *conn;
    char *url;
    bool prepared[S_COUNT];
    char **extra_prepared; /* names prepared through rt_store_exec_prepared on this connection */
    size_t n_extra, cap_extra;
    /* Definitions this connection stored or saw stored: rows are immutable, so a hash
     * seen once need not be written again (saves a statement per ingest batch). */
    char known_hashes[32][65];
    size_t n_known;
    char pending_hashes[8][65]; /* stored in the open transaction: known once it commits */
    size_t n_pending;
    char *listening; /* channel to re-LISTEN after a reconnect */
    char instance[17]; /* ratchet.instance.id, read once ("" until then) */
};

static rt_status translate(PGconn *conn, const PGresult *res, rt_error *err, const char *what)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "%s: database connection lost: %s", what,
                            PQerrorMessage(conn));
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    char clean[600];
    snprintf(clean, sizeof clean, "%s", msg ? msg : "");
    size_t n = strlen(clean);
    while (n > 0 && (clean[n - 1] == '\n' || clean[n - 1] == ' '))
        clean[--n] = '\0';
    rt_status code = RT_ERR_INTERNAL;
    if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01")))
        code = RT_ERR_CONFLICT;
    else if (state && (!strncmp(state, "08", 2) || !strcmp(state, "57P01") || !strcmp(state, "57P03")))
        code = RT_ERR_UNAVAILABLE;
    else if (state && (!strcmp(state, "22P02") || !strcmp(state, "23505")))
        code = RT_ERR_INVALID;
    return rt_error_set(err, code, "%s: %s (SQLSTATE %s)", what, clean, state ? state : "?");
}

/* Server NOTICEs ("schema already exists, skipping") are not for the user's terminal. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    rt_log(RT_LOG_DEBUG, NULL, "database notice: %s", message);
}

static rt_status connect_db(rt_store *st, rt_error *err)
{
    const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
    const char *vals[] = {st->url, "ratchet", "10", NULL};
    st->conn = PQconnectdbParams(keys, vals, 1);
    if (!st->conn)
        return rt_error_set(err, RT_ERR_NOMEM, "database: out of memory");
    if (PQstatus(st->conn) != CONNECTION_OK) {
        /* libpq's message names host and port, never the password. */
        rt_status s = rt_error_set(err, RT_ERR_UNAVAILABLE, "cannot connect to the database: %s",
                                   PQerrorMessage(st->conn));
        size_t n = strlen(err ? err->msg : "");
        while (err && n > 0 && err->msg[n - 1] == '\n')
            err->msg[--n] = '\0';
        PQfinish(st->conn);
        st->conn = NULL;
        return s;
    }
    memset(st->prepared, 0, sizeof st->prepared);
    st->n_known = 0;
    for (size_t i = 0; i < st->n_extra; i++)
        free(st->extra_prepared[i]);
    st->n_extra = 0;
    PQsetNoticeProcessor(st->conn, ignore_notice, NULL);
    PGresult *r = PQexec(st->conn, "set synchronous_commit = on; set lock_timeout = '30s'");
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_open(const char *url, rt_store **out, rt_error *err)
{
    rt_store *st = calloc(1, sizeof *st);
    if (!st)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    st->url = strdup(url);
    rt_status s = connect_db(st, err);
    if (s != RT_OK) {
        rt_store_close(st);
        return s;
    }
    *out = st;
    return RT_OK;
}

void rt_store_close(rt_store *st)
{
    if (!st)
        return;
    if (st->conn)
        PQfinish(st->conn);
    free(st->url);
    free(st->listening);
    for (size_t i = 0; i < st->n_extra; i++)
        free(st->extra_prepared[i]);
    free(st->extra_prepared);
    free(st);
}

bool rt_store_healthy(rt_store *st)
{
    return st->conn && PQstatus(st->conn) == CONNECTION_OK;
}

rt_status rt_store_reconnect(rt_store *st, rt_error *err)
{
    if (st->conn)
        PQfinish(st->conn);
    st->conn = NULL;
    rt_status s = connect_db(st, err);
    if (s == RT_OK && st->listening) {
        char *ch = st->listening;
        st->listening = NULL;
        s = rt_store_listen(st, ch, err);
        free(ch);
    }
    return s;
}

/* Checks a statement's result: on success hands it to *res (or clears it when res is
 * NULL), on failure clears it and translates the server's error. */
static rt_status take_result(rt_store *st, PGresult *r, PGresult **res, rt_error *err, const char *what)
{
    ExecStatusType es = PQresultStatus(r);
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
        rt_status s = translate(st->conn, r, err, what);
        PQclear(r);
        return s;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return RT_OK;
}

static rt_status prepare(rt_store *st, const char *name, const char *sql, rt_error *err)
{
    PGresult *p = PQprepare(st->conn, name, sql, 0, NULL);
    rt_status s = PQresultStatus(p) == PGRES_COMMAND_OK ? RT_OK : translate(st->conn, p, err, "prepare");
    PQclear(p);
    return s;
}

/* Runs a prepared statement; *res must be PQclear'ed by the caller on RT_OK. */
static rt_status run(rt_store *st, stmt_id id, int n, const char *const *params, PGresult **res, rt_error *err)
{
    char name[16];
    snprintf(name, sizeof name, "rt%d", (int)id);
    if (!st->conn)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "database connection lost");
    if (!st->prepared[id]) {
        rt_status s = prepare(st, name, stmt_sql[id], err);
        if (s != RT_OK)
            return s;
        st->prepared[id] = true;
    }
    return take_result(st, PQexecPrepared(st->conn, name, n, params, NULL, NULL, 0), res, err, "database");
}

rt_status rt_store_exec_simple(rt_store *st, const char *sql, rt_error *err)
{
    if (!st->conn)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "database connection lost");
    return take_result(st, PQexec(st->conn, sql), NULL, err, "database");
}

static rt_status run_json_n(rt_store *st, stmt_id id, json_t *doc, int n, const char *extra, rt_error *err);

/* Runs a statement whose first parameter is a JSON document (skipped when empty) and whose
 * optional second one is extra (no second parameter when extra is NULL). */
static rt_status run_json(rt_store *st, stmt_id id, json_t *doc, const char *extra, rt_error *err)
{
    return run_json_n(st, id, doc, extra ? 2 : 1, extra, err);
}

/* The same with exactly n (1 or 2) parameters; a NULL extra is SQL NULL. */
static rt_status run_json_n(rt_store *st, stmt_id id, json_t *doc, int n, const char *extra, rt_error *err)
{
    if (!doc || (json_is_array(doc) && json_array_size(doc) == 0))
        return RT_OK;
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[2] = {text, extra};
    PGresult *r = NULL;
    rt_status s = run(st, id, n, params, &r, err);
    PQclear(r);
    free(text);
    return s;
}

/* Runs a statement whose one parameter is a JSON document and returns its rows (*res must
 * be PQclear'ed on RT_OK). */
static rt_status run_json_rows(rt_store *st, stmt_id id, json_t *doc, PGresult **res, rt_error *err)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {text};
    rt_status s = run(st, id, 1, params, res, err);
    free(text);
    return s;
}

/* "{a,b,c}" array literal for uuid[]/bigint[] parameters (values are ids we produced). */
static char *array_literal(const char *const *items, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++)
        len += strlen(items[i]) + 1;
    char *buf = malloc(len);
    if (!buf)
        return NULL;
    char *p = buf;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(items[i]);
        memcpy(p, items[i], l);
        p += l;
        if (i + 1 < n)
            *p++ = ',';
    }
    *p++ = '}';
    *p = '\0';
    return buf;
}

static char *int_array_literal(const int64_t *ids, size_t n)
{
    char *buf = malloc(n * 21 + 3);
    if (!buf)
        return NULL;
    char *p = buf;
    *p++ = '{';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, i ? ",%lld" : "%lld", (long long)ids[i]);
    *p++ = '}';
    *p = '\0';
    return buf;
}

rt_status rt_store_migrate(rt_store *st, int *applied, rt_error *err)
{
    int count = 0;
    /* A fixed advisory lock key ("ratchet" in ASCII) serializes concurrent migrators. */
    rt_status s = rt_store_exec_simple(st, "select pg_advisory_lock(7526411283428713588)", err);
    if (s != RT_OK)
        return s;
    s = rt_store_exec_simple(st,
                   "create schema if not exists ratchet;"
                   "create table if not exists ratchet.schema_migrations (version int primary key,"
                   " name text not null, applied_at timestamptz not null default now())",
                   err);
    for (size_t i = 0; s == RT_OK && i < rt_migrations_count; i++) {
        const rt_migration *m = &rt_migrations[i];
        char version[16];
        snprintf(version, sizeof version, "%d", m->version);
        const char *p1[] = {version};
        PGresult *r = PQexecParams(st->conn, "select 1 from ratchet.schema_migrations where version = $1::int", 1,
                                   NULL, p1, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            s = translate(st->conn, r, err, "migrate");
            PQclear(r);
            break;
        }
        bool done = PQntuples(r) > 0;
        PQclear(r);
        if (done)
            continue;
        s = rt_store_exec_simple(st, "begin", err);
        if (s == RT_OK)
            s = rt_store_exec_simple(st, m->sql, err);
        if (s == RT_OK) {
            const char *p2[] = {version, m->name};
            r = PQexecParams(st->conn, "insert into ratchet.schema_migrations (version, name) values ($1::int, $2)",
                             2, NULL, p2, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_COMMAND_OK)
                s = translate(st->conn, r, err, "migrate");
            PQclear(r);
        }
        if (s == RT_OK)
            s = rt_store_exec_simple(st, "commit", err);
        if (s != RT_OK) {
            rt_store_rollback(st);
            rt_error_prefix(err, "migration %s", m->name);
            break;
        }
        count++;
    }
    rt_error unlock_err;
    rt_store_exec_simple(st, "select pg_advisory_unlock(7526411283428713588)", &unlock_err);
    if (applied)
        *applied = count;
    return s;
}

static void remember_hash(rt_store *st, const char *hash)
{
    memcpy(st->known_hashes[st->n_known % 32], hash, 65);
    if (st->n_known < 32)
        st->n_known++;
}

rt_status rt_store_put_workflow(rt_store *st, const rt_workflow *wf, rt_error *err)
{
    for (size_t i = 0; i < st->n_known; i++)
        if (strcmp(st->known_hashes[i], wf->hash) == 0)
            return RT_OK;
    char *def = rt_json_canonical(wf->definition);
    if (!def)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {wf->hash, wf->id, def};
    PGresult *r = NULL;
    rt_status s = run(st, S_PUT_WORKFLOW, 3, params, &r, err);
    PQclear(r);
    free(def);
    /* Remember it only once surely committed: a rollback would undo the row while the
     * cache still claimed it. */
    if (s == RT_OK && PQtransactionStatus(st->conn) == PQTRANS_IDLE)
        remember_hash(st, wf->hash);
    else if (s == RT_OK && st->n_pending < 8)
        memcpy(st->pending_hashes[st->n_pending++], wf->hash, 65);
    return s;
}

rt_status rt_store_get_definition(rt_store *st, const char *hash, json_t **def, rt_error *err)
{
    const char *params[] = {hash};
    PGresult *r = NULL;
    rt_status s = run(st, S_GET_DEFINITION, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return rt_error_set(err, RT_ERR_NOT_FOUND, "workflow version %.12s not found", hash);
    }
    json_error_t jerr;
    *def = json_loads(PQgetvalue(r, 0, 0), 0, &jerr);
    PQclear(r);
    if (!*def)
        return rt_error_set(err, RT_ERR_INTERNAL, "stored definition %.12s is not JSON: %s", hash, jerr.text);
    return RT_OK;
}

rt_status rt_store_begin(rt_store *st, rt_error *err)
{
    return rt_store_exec_simple(st, "begin", err);
}

rt_status rt_store_commit(rt_store *st, rt_error *err)
{
    rt_status s = rt_store_exec_simple(st, "commit", err);
    for (size_t i = 0; s == RT_OK && i < st->n_pending; i++)
        remember_hash(st, st->pending_hashes[i]);
    st->n_pending = 0;
    return s;
}

void rt_store_rollback(rt_store *st)
{
    st->n_pending = 0;
    if (st->conn && PQtransactionStatus(st->conn) != PQTRANS_IDLE) {
        PGresult *r = PQexec(st->conn, "rollback");
        PQclear(r);
    }
}

/* Inserts the run rows; requests whose dedupe key existed get id "". *created is the
 * uuid[] literal of the runs that were inserted. */
static rt_status create_run_rows(rt_store *st, json_t *runs, rt_run_request *reqs, size_t n, char **created,
                                 rt_error *err)
{
    PGresult *r = NULL;
    rt_status s = run_json_rows(st, S_CREATE_RUNS, runs, &r, err);
    if (s != RT_OK)
        return s;
    int rows = PQntuples(r);
    const char **ids = malloc(((size_t)rows + 1) * sizeof *ids);
    for (int i = 0; i < rows; i++)
        ids[i] = PQgetvalue(r, i, 0);
    for (size_t i = 0; i < n; i++) {
        bool made = false;
        for (int k = 0; k < rows && !made; k++)
            made = strcmp(ids[k], reqs[i].id) == 0;
        if (!made)
            reqs[i].id[0] = '\0';
    }
    *created = array_literal(ids, (size_t)rows);
    free(ids);
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_create_runs_tx(rt_store *st, rt_run_request *reqs, size_t n, rt_error *err)
{
    json_t *runs = json_array(), *steps = json_array(), *queue = json_array();
    rt_status s = RT_OK;
    for (size_t i = 0; i < n; i++) {
        rt_run_request *q = &reqs[i];
        rt_uuid7(q->id);
        char ckey[512];
        int climit = 0;
        bool has_ckey = rt_workflow_concurrency_key(q->wf, q->event, ckey, sizeof ckey, &climit);
        json_array_append_new(
            runs, json_pack("{s:s, s:s, s:s, s:O, s:O, s:i, s:I, s:s?, s:I, s:I, s:s?, s:i, s:s?, s:s?}", "id", q->id,
                            "workflow_id", q->wf->id, "workflow_hash", q->wf->hash, "trigger", q->trigger, "event",
                            q->event, "priority", (int)q->wf->priority, "run_at", (json_int_t)q->run_at_ms,
                            "dedupe_key", q->dedupe_key, "timeout", (json_int_t)q->wf->timeout_ms, "start_timeout",
                            (json_int_t)q->wf->start_timeout_ms, "ckey", has_ckey ? ckey : NULL, "climit", climit,
                            "parent_run_id", q->parent_run_id, "parent_step_id", q->parent_step_id));
        for (size_t k = 0; k < q->wf->n_steps; k++) {
            const rt_step_def *d = &q->wf->steps[k];
            /* Ready: not carried over (replay --from) and every need carried over. */
            if (json_object_get(q->prefill, d->id))
                continue;
            bool ready = true;
            for (size_t m = 0; m < d->n_needs && ready; m++)
                ready = json_object_get(q->prefill, q->wf->steps[d->need_idx[m]].id) != NULL;
            if (!ready)
                continue;
            /* A pending row for every ready step, root steps included: without it a
             * completion inserts the step row instead of updating it in place, and with 8
             * workers those inserts meet at the right edge of steps_pkey (run ids are
             * time-ordered): drained ~20 % slower although it wrote fewer WAL records. */
            json_array_append_new(steps, json_pack("{s:s, s:s}", "run_id", q->id, "step_id", d->id));
            json_array_append_new(queue, json_pack("{s:s, s:s, s:i, s:b, s:I, s:s?, s:i}", "run_id", q->id,
                                                   "step_id", d->id, "priority", (int)q->wf->priority, "slow",
                                                   !d->type->quick, "run_at", (json_int_t)q->run_at_ms, "ckey",
                                                   has_ckey ? ckey : NULL, "climit", climit));
        }
    }
    for (size_t i = 0; s == RT_OK && i < n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = reqs[k].wf == reqs[i].wf;
        if (!seen)
            s = rt_store_put_workflow(st, reqs[i].wf, err);
    }
    char *created = NULL;
    if (s == RT_OK)
        s = create_run_rows(st, runs, reqs, n, &created, err);
    for (size_t i = 0; s == RT_OK && i < n; i++) {
        if (reqs[i].id[0]) /* counted when created; a rolled-back transaction overcounts */
            rt_metrics_counter_add("ratchet_runs_started_total", "workflow", reqs[i].wf->id, 1);
    }
    if (s == RT_OK)
        s = run_json(st, S_CREATE_STEPS, steps, created, err);
    if (s == RT_OK) {
        /* Memoized rows carried over by replay --from. */
        json_t *carried = json_array();
        for (size_t i = 0; i < n; i++) {
            const char *sid;
            json_t *row;
            if (!reqs[i].id[0])
                continue;
            json_object_foreach(reqs[i].prefill, sid, row) {
                json_array_append_new(carried, json_pack("{s:s, s:s, s:O, s:i, s:O?}", "run_id", reqs[i].id, "step_id",
                                                         sid, "status", json_object_get(row, "status"), "attempts", 0,
                                                         "output", json_object_get(row, "output")));
            }
        }
        s = run_json(st, S_APPLY_STEPS, carried, NULL, err);
        json_decref(carried);
    }
    if (s == RT_OK)
        s = run_json(st, S_CREATE_QUEUE, queue, created, err);
    free(created);
    if (s == RT_OK) {
        PGresult *r = NULL;
        s = run(st, S_NOTIFY, 0, NULL, &r, err);
        PQclear(r);
    }
    json_decref(runs);
    json_decref(steps);
    json_decref(queue);
    return s;
}

static rt_status single_json(rt_store *st, stmt_id id, int n, const char *const *params, json_t **out,
                             rt_error *err)
{
    PGresult *r = NULL;
    rt_status s = run(st, id, n, params, &r, err);
    return s == RT_OK ? rt_store_result_json(r, out, err) : s;
}

rt_status rt_store_result_json(PGresult *r, json_t **out, rt_error *err)
{
    *out = NULL;
    if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        return rt_error_set(err, RT_ERR_NOT_FOUND, "not found");
    }
    json_error_t jerr;
    *out = json_loads(PQgetvalue(r, 0, 0), JSON_DECODE_ANY, &jerr);
    PQclear(r);
    return *out ? RT_OK : rt_error_set(err, RT_ERR_INTERNAL, "bad JSON from the database: %s", jerr.text);
}

static rt_status get_run(rt_store *st, const char *id, bool with_steps, json_t **out, rt_error *err)
{
    if (!rt_uuid_valid(id))
        return rt_error_set(err, RT_ERR_INVALID, "\"%.64s\" is not a run id (expected a UUID)", id);
    const char *params[] = {id};
    rt_status s = single_json(st, S_GET_RUN, 1, params, out, err);
    if (s == RT_ERR_NOT_FOUND)
        return rt_error_set(err, RT_ERR_NOT_FOUND, "run %s not found", id);
    if (s != RT_OK || !with_steps)
        return s;
    json_t *steps = NULL;
    s = single_json(st, S_GET_RUN_STEPS, 1, params, &steps, err);
    if (s != RT_OK) {
        json_decref(*out);
        *out = NULL;
        return s;
    }
    json_object_set_new(*out, "steps", steps);
    return RT_OK;
}

/* jsonb orders keys by length; print them in the documented order instead. */
static json_t *in_order(json_t *o, const char *const *keys)
{
    json_t *r = json_object();
    for (size_t i = 0; keys[i]; i++) {
        json_t *v = json_object_get(o, keys[i]);
        if (v)
            json_object_set(r, keys[i], v);
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (!json_object_get(r, k))
            json_object_set(r, k, v);
    }
    json_decref(o);
    return r;
}

static const char *const run_keys[] = {"id", "workflow", "status", "trigger", "created_at", "started_at",
                                       "finished_at", "output", "error", "steps", NULL};
static const char *const step_keys[] = {"id", "status", "attempts", "output", "error", "started_at",
                                        "finished_at", "failed_attempts", "items_done", NULL};

static json_t *run_in_order(json_t *run)
{
    json_t *steps = json_object_get(run, "steps");
    size_t i;
    json_t *st;
    json_array_foreach(steps, i, st) {
        json_array_set_new(steps, i, in_order(json_incref(st), step_keys));
    }
    return in_order(run, run_keys);
}

rt_status rt_store_get_run(rt_store *st, const char *id, bool with_steps, json_t **out, rt_error *err)
{
    rt_status s = get_run(st, id, with_steps, out, err);
    if (s == RT_OK)
        *out = run_in_order(*out);
    return s;
}

rt_status rt_store_list_runs(rt_store *st, const rt_run_filter *f, json_t **out, rt_error *err)
{
    char limit[16];
    snprintf(limit, sizeof limit, "%d", f->limit > 0 ? f->limit : 50);
    const char *params[] = {f->workflow, f->status, limit};
    rt_status s = single_json(st, S_LIST_RUNS, 3, params, out, err);
    size_t i;
    json_t *run;
    if (s == RT_OK)
        json_array_foreach(*out, i, run) json_array_set_new(*out, i, run_in_order(json_incref(run)));
    return s;
}

static json_t *parse_or_null(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return json_loads(PQgetvalue(r, row, col), JSON_DECODE_ANY, NULL);
}

static rt_status parse_claims(PGresult *r, rt_claim **out, size_t *n, rt_error *err);
static rt_status run_uuids(rt_store *st, stmt_id id, const char *const *run_ids, size_t n, PGresult **res,
                          rt_error *err);

rt_status rt_store_claim(rt_store *st, const char *owner, int limit, int64_t lease_ms, rt_claim **out, size_t *n,
                         rt_error *err)
{
    char lim[16], lease[24];
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(lease, sizeof lease, "%lld", (long long)lease_ms);
    *out = NULL;
    *n = 0;
    rt_status s = rt_store_begin(st, err);
    PGresult *pick = NULL, *r = NULL;
    const char *p1[] = {lim};
    if (s == RT_OK)
        s = run(st, S_CLAIM_PICK, 1, p1, &pick, err);
    size_t n_ids = 0;
    const char **ids = NULL;
    if (s == RT_OK) {
        ids = calloc((size_t)PQntuples(pick) + 1, sizeof *ids);
        for (int i = 0; s == RT_OK && i < PQntuples(pick); i++) {
            const char *id = PQgetvalue(pick, i, 0);
            if (!PQgetisnull(pick, i, 1)) {
                /* Under the key's lock the count sees every lease committed before it. */
                const char *key = PQgetvalue(pick, i, 1);
                const char *pk[] = {key};
                const char *pc[] = {key, id};
                PGresult *x = NULL;
                s = run(st, S_CKEY_LOCK, 1, pk, &x, err);
                PQclear(x);
                x = NULL;
                if (s == RT_OK)
                    s = run(st, S_CKEY_COUNT, 2, pc, &x, err);
                bool full = s == RT_OK && atoi(PQgetvalue(x, 0, 0)) >= atoi(PQgetvalue(pick, i, 2));
                PQclear(x);
                if (full) {
                    const char *pd[] = {id};
                    x = NULL;
                    s = run(st, S_DEFER, 1, pd, &x, err);
                    PQclear(x);
                    continue;
                }
            }
            ids[n_ids++] = id;
        }
    }
    if (s == RT_OK && n_ids > 0) {
        char *arr = array_literal(ids, n_ids);
        const char *params[] = {arr, lease, owner};
        s = run(st, S_CLAIM, 3, params, &r, err);
        free(arr);
    }
    if (s == RT_OK && r && PQntuples(r) > 0) {
        /* Their runs are running from now on, in this same commit (not one of their own). */
        const char **runs = calloc((size_t)PQntuples(r), sizeof *runs);
        for (int i = 0; runs && i < PQntuples(r); i++)
            runs[i] = PQgetvalue(r, i, 1);
        s = runs ? rt_store_mark_running(st, runs, (size_t)PQntuples(r), err)
                 : rt_error_set(err, RT_ERR_NOMEM, "out of memory");
        free(runs);
    }
    free(ids);
    PQclear(pick);
    if (s == RT_OK)
        s = rt_store_commit(st, err);
    if (s != RT_OK) {
        PQclear(r);
        rt_store_rollback(st);
        return s;
    }
    return r ? parse_claims(r, out, n, err) : RT_OK;
}

rt_status rt_store_claim_quick(rt_store *st, int limit, rt_claim **out, size_t *n, bool *slow_due, rt_error *err)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {lim};
    PGresult *r = NULL;
    *out = NULL;
    *n = 0;
    rt_status s = run(st, S_CLAIM_QUICK, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return rt_store_slow_due(st, slow_due, err);
    }
    *slow_due = PQgetvalue(r, 0, 19)[0] != '0'; /* after the columns rt_claim reads (0..18) */
    return parse_claims(r, out, n, err);
}

rt_status rt_store_claim_created(rt_store *st, const char *const *run_ids, size_t n_runs, rt_claim **out, size_t *n,
                                 rt_error *err)
{
    *out = NULL;
    *n = 0;
    PGresult *r = NULL;
    rt_status s = run_uuids(st, S_CLAIM_CREATED, run_ids, n_runs, &r, err);
    return s == RT_OK ? parse_claims(r, out, n, err) : s;
}

rt_status rt_store_slow_due(rt_store *st, bool *due, rt_error *err)
{
    PGresult *r = NULL;
    *due = false;
    rt_status s = run(st, S_SLOW_DUE, 0, NULL, &r, err);
    if (s == RT_OK)
        *due = PQgetvalue(r, 0, 0)[0] != '0';
    PQclear(r);
    return s;
}

/* Takes ownership of r. */
static rt_status parse_claims(PGresult *r, rt_claim **out, size_t *n, rt_error *err)
{
    int rows = PQntuples(r);
    if (rows == 0) {
        PQclear(r);
        return RT_OK;
    }
    rt_claim *c = calloc((size_t)rows, sizeof *c);
    if (!c) {
        PQclear(r);
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < rows; i++) {
        c[i].queue_id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        snprintf(c[i].run_id, sizeof c[i].run_id, "%s", PQgetvalue(r, i, 1));
        c[i].step_id = strdup(PQgetvalue(r, i, 2));
        c[i].workflow_id = strdup(PQgetvalue(r, i, 3));
        snprintf(c[i].wf_hash, sizeof c[i].wf_hash, "%s", PQgetvalue(r, i, 4));
        c[i].run_status = strdup(PQgetvalue(r, i, 5));
        c[i].attempt = atoi(PQgetvalue(r, i, 6));
        c[i].state = parse_or_null(r, i, 7);
        c[i].event = parse_or_null(r, i, 8);
        c[i].trigger = parse_or_null(r, i, 9);
        c[i].run_created_ms = strtoll(PQgetvalue(r, i, 10), NULL, 10);
        c[i].run_started_ms = strtoll(PQgetvalue(r, i, 11), NULL, 10);
        c[i].priority = atoi(PQgetvalue(r, i, 12));
        c[i].slow = PQgetvalue(r, i, 13)[0] == 't';
        c[i].ckey = PQgetisnull(r, i, 14) ? NULL : strdup(PQgetvalue(r, i, 14));
        c[i].climit = atoi(PQgetvalue(r, i, 15));
        c[i].parent_run_id = PQgetisnull(r, i, 16) ? NULL : strdup(PQgetvalue(r, i, 16));
        c[i].parent_step_id = PQgetisnull(r, i, 17) ? NULL : strdup(PQgetvalue(r, i, 17));
        c[i].fence = strtoll(PQgetvalue(r, i, 18), NULL, 10);
    }
    PQclear(r);
    *out = c;
    *n = (size_t)rows;
    return RT_OK;
}

void rt_claims_free(rt_claim *c, size_t n)
{
    if (!c)
        return;
    for (size_t i = 0; i < n; i++) {
        free(c[i].step_id);
        free(c[i].workflow_id);
        free(c[i].run_status);
        free(c[i].ckey);
        free(c[i].parent_run_id);
        free(c[i].parent_step_id);
        json_decref(c[i].state);
        json_decref(c[i].event);
        json_decref(c[i].trigger);
    }
    free(c);
}

/* Runs a statement whose one parameter is the uuid[] of run_ids; *res as for run(). */
static rt_status run_uuids(rt_store *st, stmt_id id, const char *const *run_ids, size_t n, PGresult **res,
                           rt_error *err)
{
    char *arr = array_literal(run_ids, n);
    if (!arr)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {arr};
    rt_status s = run(st, id, 1, params, res, err);
    free(arr);
    return s;
}

rt_status rt_store_mark_running(rt_store *st, const char *const *run_ids, size_t n, rt_error *err)
{
    if (n == 0)
        return RT_OK;
    PGresult *r = NULL;
    rt_status s = run_uuids(st, S_MARK_RUNNING, run_ids, n, &r, err);
    PQclear(r);
    return s;
}

/* {run_id: {...}} from rows of (run_id, json object text). */
static rt_status rows_to_object(rt_store *st, stmt_id id, const char *const *run_ids, size_t n, json_t **out,
                                rt_error *err)
{
    *out = json_object();
    if (n == 0)
        return RT_OK;
    PGresult *r = NULL;
    rt_status s = run_uuids(st, id, run_ids, n, &r, err);
    if (s != RT_OK) {
        json_decref(*out);
        *out = NULL;
        return s;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *v = parse_or_null(r, i, 1);
        json_object_set_new(*out, PQgetvalue(r, i, 0), v ? v : json_object());
    }
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_load_steps(rt_store *st, const char *const *run_ids, size_t n, json_t **out, rt_error *err)
{
    return rows_to_object(st, S_LOAD_STEPS, run_ids, n, out, err);
}

rt_status rt_store_lock_runs(rt_store *st, const char *const *run_ids, size_t n, json_t **out, rt_error *err)
{
    *out = NULL;
    PGresult *r = NULL;
    rt_status s = run_uuids(st, S_LOCK_RUNS, run_ids, n, &r, err);
    if (s != RT_OK)
        return s;
    json_t *runs = json_object();
    for (int i = 0; i < PQntuples(r); i++)
        json_object_set_new(runs, PQgetvalue(r, i, 0),
                            json_pack("{s:s, s:{}}", "status", PQgetvalue(r, i, 1), "steps"));
    PQclear(r);
    json_t *steps = NULL;
    s = rows_to_object(st, S_LOCK_STEPS, run_ids, n, &steps, err);
    if (s != RT_OK) {
        json_decref(runs);
        return s;
    }
    const char *key;
    json_t *val;
    json_object_foreach(steps, key, val) {
        json_t *run_obj = json_object_get(runs, key);
        if (run_obj)
            json_object_set(run_obj, "steps", val); /* incref: steps keeps its own */
    }
    json_decref(steps);
    *out = runs;
    return RT_OK;
}

rt_status rt_store_lock_owned(rt_store *st, const char *owner, const int64_t *ids, size_t n, json_t **owned,
                              rt_error *err)
{
    char *arr = int_array_literal(ids, n);
    const char *params[] = {arr, owner};
    rt_status s = single_json(st, S_LOCK_OWNED, 2, params, owned, err);
    free(arr);
    return s;
}

/* steps, dequeue and runs of a batch in one statement; nothing to do when all are empty. */
static rt_status apply_hot(rt_store *st, const char *owner, json_t *batch, rt_error *err)
{
    const char *keys[3] = {"steps", "dequeue", "runs"};
    char *text[3] = {NULL, NULL, NULL};
    size_t total = 0;
    rt_status s = RT_OK;
    for (int i = 0; i < 3; i++) {
        json_t *a = json_object_get(batch, keys[i]);
        total += json_array_size(a);
        text[i] = a ? json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("[]");
        if (!text[i])
            s = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    }
    if (s == RT_OK && total > 0) {
        const char *params[] = {text[0], text[1], owner, text[2]};
        PGresult *r = NULL;
        s = run(st, S_APPLY_HOT, 4, params, &r, err);
        PQclear(r);
    }
    for (int i = 0; i < 3; i++)
        free(text[i]);
    return s;
}

rt_status rt_store_apply(rt_store *st, const char *owner, json_t *batch, rt_error *err)
{
    rt_status s = apply_hot(st, owner, batch, err);
    if (s == RT_OK)
        s = run_json(st, S_APPLY_ENQUEUE, json_object_get(batch, "enqueue"), NULL, err);
    if (s == RT_OK)
        s = run_json_n(st, S_APPLY_REQUEUE, json_object_get(batch, "requeue"), 2, owner, err);
    if (s == RT_OK)
        s = run_json(st, S_APPLY_ATTEMPTS, json_object_get(batch, "attempts"), NULL, err);
    if (s == RT_OK)
        s = run_json(st, S_APPLY_DROP, json_object_get(batch, "drop_runs"), NULL, err);
    if (s == RT_OK)
        s = run_json(st, S_APPLY_UNWAIT, json_object_get(batch, "unwait"), NULL, err);
    if (s == RT_OK && json_array_size(json_object_get(batch, "wake")) > 0) {
        s = rt_store_wake_steps(st, json_object_get(batch, "wake"), err);
        json_object_set(batch, "notify", json_true());
    }
    if (s == RT_OK && json_is_true(json_object_get(batch, "notify"))) {
        PGresult *r = NULL;
        s = run(st, S_NOTIFY, 0, NULL, &r, err);
        PQclear(r);
    }
    return s;
}

rt_status rt_store_renew(rt_store *st, const char *owner, const int64_t *ids, size_t n, int64_t lease_ms,
                         bool *run_ended, size_t *renewed, rt_error *err)
{
    *run_ended = false;
    *renewed = 0;
    if (n == 0)
        return RT_OK;
    char *arr = int_array_literal(ids, n);
    char lease[24];
    snprintf(lease, sizeof lease, "%lld", (long long)lease_ms);
    const char *params[] = {arr, owner, lease};
    PGresult *r = NULL;
    rt_status s = run(st, S_RENEW, 3, params, &r, err);
    for (int i = 0; s == RT_OK && i < PQntuples(r); i++)
        *run_ended = *run_ended || PQgetvalue(r, i, 0)[0] == 't';
    if (s == RT_OK)
        *renewed = (size_t)PQntuples(r);
    PQclear(r);
    free(arr);
    return s;
}

rt_status rt_store_release(rt_store *st, const char *owner_prefix, int *released, rt_error *err)
{
    const char *params[] = {owner_prefix};
    PGresult *r = NULL;
    rt_status s = run(st, S_RELEASE, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    if (released)
        *released = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_next_due(rt_store *st, int64_t *ms, int64_t *next_future_ms, rt_error *err)
{
    PGresult *r = NULL;
    rt_status s = run(st, S_NEXT_DUE, 0, NULL, &r, err);
    if (s != RT_OK)
        return s;
    *ms = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *next_future_ms = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_listen(rt_store *st, const char *channel, rt_error *err)
{
    char *quoted = PQescapeIdentifier(st->conn, channel, strlen(channel));
    if (!quoted)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "listen: %s", PQerrorMessage(st->conn));
    char sql[256];
    snprintf(sql, sizeof sql, "listen %s", quoted);
    PQfreemem(quoted);
    rt_status s = rt_store_exec_simple(st, sql, err);
    if (s == RT_OK) {
        free(st->listening);
        st->listening = strdup(channel);
    }
    return s;
}

rt_status rt_store_wait_notify(rt_store *st, int timeout_ms, bool *notified, rt_error *err)
{
    *notified = false;
    if (!rt_store_healthy(st))
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "database connection lost");
    PGnotify *nt;
    PQconsumeInput(st->conn);
    while ((nt = PQnotifies(st->conn)) != NULL) {
        *notified = true;
        PQfreemem(nt);
    }
    if (*notified)
        return RT_OK;
    struct pollfd pfd = {.fd = PQsocket(st->conn), .events = POLLIN};
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc < 0 && errno != EINTR)
        return rt_error_set(err, RT_ERR_IO, "poll: %s", strerror(errno));
    if (rc > 0) {
        if (!PQconsumeInput(st->conn))
            return rt_error_set(err, RT_ERR_UNAVAILABLE, "database connection lost: %s", PQerrorMessage(st->conn));
        while ((nt = PQnotifies(st->conn)) != NULL) {
            *notified = true;
            PQfreemem(nt);
        }
    }
    return RT_OK;
}

static rt_status database_ddl(rt_store *st, const char *verb, const char *name, rt_error *err)
{
    char *quoted = PQescapeIdentifier(st->conn, name, strlen(name));
    if (!quoted)
        return rt_error_set(err, RT_ERR_INVALID, "bad database name");
    char sql[300];
    snprintf(sql, sizeof sql, "%s %s", verb, quoted);
    PQfreemem(quoted);
    return rt_store_exec_simple(st, sql, err);
}

rt_status rt_store_create_database(rt_store *st, const char *name, rt_error *err)
{
    return database_ddl(st, "create database", name, err);
}

rt_status rt_store_drop_database(rt_store *st, const char *name, rt_error *err)
{
    return database_ddl(st, "drop database if exists", name, err);
}

static rt_status scalar_text(rt_store *st, const char *sql, const char *param, char *buf, size_t len, rt_error *err)
{
    const char *params[] = {param};
    PGresult *r = PQexecParams(st->conn, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rt_status s = translate(st->conn, r, err, "database");
        PQclear(r);
        return s;
    }
    snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_queue_size(rt_store *st, int64_t *n, rt_error *err)
{
    char buf[32];
    rt_status s = scalar_text(st, "select count(*) from ratchet.queue", NULL, buf, sizeof buf, err);
    if (s == RT_OK)
        *n = strtoll(buf, NULL, 10);
    return s;
}

rt_status rt_store_setting(rt_store *st, const char *name, char *buf, size_t len, rt_error *err)
{
    return scalar_text(st, "select current_setting($1)", name, buf, len, err);
}

rt_status rt_store_insert_events(rt_store *st, json_t *events, json_t **inserted, rt_error *err)
{
    *inserted = json_array();
    if (json_array_size(events) == 0)
        return RT_OK;
    PGresult *r = NULL;
    rt_status s = run_json_rows(st, S_INSERT_EVENTS, events, &r, err);
    if (s != RT_OK)
        return s;
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(*inserted, json_string(PQgetvalue(r, i, 0)));
    PQclear(r);
    return RT_OK;
}


rt_status rt_store_list_events(rt_store *st, const char *name, int limit, json_t **out, rt_error *err)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit > 0 ? limit : 50);
    const char *params[] = {name, lim};
    return single_json(st, S_LIST_EVENTS, 2, params, out, err);
}

static rt_status delete_old(rt_store *st, stmt_id id, int64_t older_than_ms, int batch, int *deleted, rt_error *err)
{
    char age[24], lim[16];
    snprintf(age, sizeof age, "%lld", (long long)older_than_ms);
    snprintf(lim, sizeof lim, "%d", batch);
    const char *params[] = {age, lim};
    PGresult *r = NULL;
    rt_status s = run(st, id, 2, params, &r, err);
    if (s != RT_OK)
        return s;
    *deleted = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_delete_old_events(rt_store *st, int64_t older_than_ms, int batch, int *deleted, rt_error *err)
{
    return delete_old(st, S_DELETE_OLD_EVENTS, older_than_ms, batch, deleted, err);
}

rt_status rt_store_delete_old_runs(rt_store *st, int64_t older_than_ms, int batch, int *deleted, rt_error *err)
{
    return delete_old(st, S_DELETE_OLD_RUNS, older_than_ms, batch, deleted, err);
}

PGconn *rt_store_pg(rt_store *st)
{
    return st->conn;
}

rt_status rt_store_error(rt_store *st, const PGresult *res, rt_error *err, const char *what)
{
    return translate(st->conn, res, err, what);
}

static rt_status names_param(json_t *names, char **out)
{
    size_t n = json_array_size(names);
    const char **items = malloc((n ? n : 1) * sizeof *items);
    if (!items)
        return RT_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        items[i] = json_string_value(json_array_get(names, i));
    *out = array_literal(items, n); /* event names: [A-Za-z0-9_:.-] only, safe in an array literal */
    free(items);
    return *out ? RT_OK : RT_ERR_NOMEM;
}

/* A statement whose one parameter is a text[] of names, returning one JSON document. */
static rt_status names_query(rt_store *st, stmt_id id, json_t *names, json_t **out, rt_error *err)
{
    char *arr = NULL;
    if (names_param(names, &arr) != RT_OK)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {arr};
    rt_status s = single_json(st, id, 1, params, out, err);
    free(arr);
    return s;
}

rt_status rt_store_lock_event_names(rt_store *st, json_t *names, bool exclusive, rt_error *err)
{
    if (json_array_size(names) == 0)
        return RT_OK;
    char *arr = NULL;
    if (names_param(names, &arr) != RT_OK)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {arr};
    PGresult *r = NULL;
    rt_status s = run(st, exclusive ? S_LOCK_EVENT_NAMES : S_LOCK_EVENT_NAMES_SHARED, 1, params, &r, err);
    PQclear(r);
    free(arr);
    return s;
}

rt_status rt_store_events_since(rt_store *st, json_t *names, int64_t from_ms, json_t **out, rt_error *err)
{
    char *arr = NULL;
    if (names_param(names, &arr) != RT_OK)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    char from[24];
    snprintf(from, sizeof from, "%lld", (long long)from_ms);
    const char *params[] = {arr, from};
    rt_status s = single_json(st, S_EVENTS_SINCE, 2, params, out, err);
    free(arr);
    return s;
}

rt_status rt_store_insert_waits(rt_store *st, json_t *waits, rt_error *err)
{
    return run_json(st, S_INSERT_WAITS, waits, NULL, err);
}

rt_status rt_store_find_waits(rt_store *st, json_t *names, json_t **out, rt_error *err)
{
    return names_query(st, S_FIND_WAITS, names, out, err);
}

rt_status rt_store_match_waits(rt_store *st, json_t *matched, int *woken, rt_error *err)
{
    *woken = 0;
    if (json_array_size(matched) == 0)
        return RT_OK;
    char *text = json_dumps(matched, JSON_COMPACT);
    const char *params[] = {text};
    json_t *taken = NULL;
    rt_status s = single_json(st, S_MATCH_WAITS_DELETE, 1, params, &taken, err);
    free(text);
    if (s != RT_OK)
        return s;
    /* Only the waits this transaction deleted are ours to wake. */
    json_t *ours = json_array();
    size_t i, k;
    json_t *m, *t;
    json_array_foreach(matched, i, m) {
        json_array_foreach(taken, k, t) {
            if (json_equal(json_object_get(m, "run_id"), json_object_get(t, "run_id")) &&
                json_equal(json_object_get(m, "step_id"), json_object_get(t, "step_id"))) {
                json_array_append(ours, m);
                break;
            }
        }
    }
    s = run_json(st, S_MATCH_WAITS_STEPS, ours, NULL, err);
    if (s == RT_OK)
        s = run_json(st, S_MATCH_WAITS_QUEUE, ours, NULL, err);
    if (s == RT_OK && json_array_size(ours) > 0) {
        PGresult *r = NULL;
        s = run(st, S_NOTIFY, 0, NULL, &r, err);
        PQclear(r);
    }
    *woken = (int)json_array_size(ours);
    json_decref(ours);
    json_decref(taken);
    return s;
}

rt_status rt_store_active_runs(rt_store *st, json_t *workflow_ids, json_t **out, rt_error *err)
{
    return names_query(st, S_ACTIVE_RUNS, workflow_ids, out, err);
}

rt_status rt_store_cancel_runs(rt_store *st, json_t *runs, rt_error *err)
{
    rt_status s = run_json(st, S_CANCEL_RUNS, runs, NULL, err);
    if (s == RT_OK)
        s = run_json(st, S_CANCEL_QUEUE, runs, NULL, err);
    return s;
}

rt_status rt_store_wake_steps(rt_store *st, json_t *wake, rt_error *err)
{
    rt_status s = run_json(st, S_WAKE_STEPS, wake, NULL, err);
    if (s == RT_OK)
        s = run_json(st, S_WAKE_QUEUE, wake, NULL, err);
    if (s == RT_OK && json_array_size(wake) > 0) {
        PGresult *r = NULL;
        s = run(st, S_NOTIFY, 0, NULL, &r, err);
        PQclear(r);
    }
    return s;
}

rt_status rt_store_sweep_deadlines(rt_store *st, json_t **ended, rt_error *err)
{
    return single_json(st, S_SWEEP_DEADLINES, 0, NULL, ended, err);
}

rt_status rt_store_run_source(rt_store *st, const char *id, json_t **out, rt_error *err)
{
    if (!rt_uuid_valid(id))
        return rt_error_set(err, RT_ERR_INVALID, "\"%.64s\" is not a run id (expected a UUID)", id);
    const char *params[] = {id};
    rt_status s = single_json(st, S_RUN_SOURCE, 1, params, out, err);
    if (s == RT_ERR_NOT_FOUND)
        return rt_error_set(err, RT_ERR_NOT_FOUND, "run %s not found", id);
    return s;
}

rt_status rt_store_count_events(rt_store *st, const char *name, int64_t *n, rt_error *err)
{
    const char *params[] = {name};
    PGresult *r = NULL;
    rt_status s = run(st, S_COUNT_EVENTS, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    *n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_bench_latency(rt_store *st, int64_t since_ms, bool finished, int64_t *n, double *p50, double *p99,
                                 rt_error *err)
{
    char since[24];
    snprintf(since, sizeof since, "%lld", (long long)since_ms);
    const char *params[] = {since};
    PGresult *r = NULL;
    rt_status s = run(st, finished ? S_BENCH_LATENCY_DONE : S_BENCH_LATENCY, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    *n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *p50 = strtod(PQgetvalue(r, 0, 1), NULL);
    *p99 = strtod(PQgetvalue(r, 0, 2), NULL);
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_exec_prepared(rt_store *st, const char *name, const char *sql, int n, const char *const *params,
                                 PGresult **res, rt_error *err)
{
    if (!st->conn || PQstatus(st->conn) != CONNECTION_OK)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "database connection lost");
    bool known = false;
    for (size_t i = 0; i < st->n_extra && !known; i++)
        known = strcmp(st->extra_prepared[i], name) == 0;
    if (!known) {
        rt_status s = prepare(st, name, sql, err);
        if (s != RT_OK)
            return s;
        if (st->n_extra == st->cap_extra) {
            size_t cap = st->cap_extra ? st->cap_extra * 2 : 32;
            char **grown = realloc(st->extra_prepared, cap * sizeof *grown);
            if (!grown)
                return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
            st->extra_prepared = grown;
            st->cap_extra = cap;
        }
        st->extra_prepared[st->n_extra++] = strdup(name);
    }
    return take_result(st, PQexecPrepared(st->conn, name, n, params, NULL, NULL, 0), res, err, "database");
}

rt_status rt_store_exec_params(rt_store *st, const char *sql, int n, const char *const *params, PGresult **res,
                               rt_error *err, const char *what)
{
    if (!st->conn)
        return rt_error_set(err, RT_ERR_UNAVAILABLE, "%s: database connection lost", what);
    return take_result(st, PQexecParams(st->conn, sql, n, NULL, params, NULL, NULL, 0), res, err, what);
}

rt_status rt_store_exec_json(rt_store *st, const char *name, const char *sql, json_t *doc, rt_error *err)
{
    if (!doc || (json_is_array(doc) && json_array_size(doc) == 0))
        return RT_OK;
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {text};
    rt_status s = rt_store_exec_prepared(st, name, sql, 1, params, NULL, err);
    free(text);
    return s;
}

rt_status rt_store_outbox_take(rt_store *st, int limit, json_t **out, rt_error *err)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {lim};
    return single_json(st, S_OUTBOX_TAKE, 1, params, out, err);
}

rt_status rt_store_outbox_done(rt_store *st, json_t *ids, rt_error *err)
{
    if (json_array_size(ids) == 0)
        return RT_OK;
    char *arr = NULL;
    if (names_param(ids, &arr) != RT_OK) /* ids made by the engine: no quotes or commas */
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {arr};
    PGresult *r = NULL;
    rt_status s = run(st, S_OUTBOX_DONE, 1, params, &r, err);
    PQclear(r);
    free(arr);
    return s;
}

rt_status rt_store_items_load(rt_store *st, const char *run_id, const char *step_id, json_t *items, json_t **out,
                              rt_error *err)
{
    char *text = json_dumps(items, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {run_id, step_id, text};
    rt_status s = single_json(st, S_ITEMS_LOAD, 3, params, out, err);
    free(text);
    return s;
}

rt_status rt_store_item_save(rt_store *st, int64_t queue_id, const char *owner, const char *run_id,
                             const char *step_id, int idx, json_t *item, json_t *output, bool *held, rt_error *err)
{
    char qid[24], ix[16];
    snprintf(qid, sizeof qid, "%lld", (long long)queue_id);
    snprintf(ix, sizeof ix, "%d", idx);
    char *out_text = json_dumps(output ? output : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    char *item_text = json_dumps(item ? item : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    rt_status s;
    if (!out_text || !item_text) {
        s = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    } else {
        const char *params[] = {qid, owner, run_id, step_id, ix, out_text, item_text};
        PGresult *r = NULL;
        s = run(st, S_ITEM_SAVE, 7, params, &r, err);
        if (s == RT_OK)
            *held = PQntuples(r) == 1 && atoi(PQgetvalue(r, 0, 0)) > 0;
        PQclear(r);
    }
    free(out_text);
    free(item_text);
    return s;
}

rt_status rt_store_events_existing(rt_store *st, json_t *ids, json_t **out, rt_error *err)
{
    *out = NULL;
    char *text = json_dumps(ids, JSON_COMPACT);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {text};
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st,
                                       "select coalesce(jsonb_agg(id), '[]')::text from ratchet.events"
                                       " where id in (select jsonb_array_elements_text($1::jsonb))",
                                       1, params, &r, err, "events");
    free(text);
    return s == RT_OK ? rt_store_result_json(r, out, err) : s;
}

rt_status rt_store_run_event(rt_store *st, const char *run_id, json_t **out, rt_error *err)
{
    *out = NULL;
    if (!rt_uuid_valid(run_id))
        return rt_error_set(err, RT_ERR_NOT_FOUND, "not a run id");
    const char *params[] = {run_id};
    PGresult *r = NULL;
    rt_status s = rt_store_exec_params(st, "select event::text from ratchet.runs where id = $1::uuid", 1, params, &r,
                                       err, "run event");
    return s == RT_OK ? rt_store_result_json(r, out, err) : s;
}

rt_status rt_store_instance_id(rt_store *st, char out[17], rt_error *err)
{
    if (!st->instance[0]) {
        PGresult *r = NULL;
        rt_status s = rt_store_exec_params(st, "select id from ratchet.instance", 0, NULL, &r, err, "instance id");
        if (s != RT_OK)
            return s;
        if (PQntuples(r) != 1 || strlen(PQgetvalue(r, 0, 0)) != 16) {
            PQclear(r);
            return rt_error_set(err, RT_ERR_INTERNAL, "ratchet.instance holds no id: run `ratchet migrate`");
        }
        memcpy(st->instance, PQgetvalue(r, 0, 0), 17);
        PQclear(r);
    }
    memcpy(out, st->instance, 17);
    return RT_OK;
}

rt_status rt_store_engine_event_id(rt_store *st, char *buf, size_t len, rt_error *err, const char *fmt, ...)
{
    char inst[17];
    rt_status s = rt_store_instance_id(st, inst, err);
    if (s != RT_OK)
        return s;
    int n = snprintf(buf, len, RT_EVENT_ENGINE_ID_PREFIX "%s:", inst);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < len)
        vsnprintf(buf + n, len - (size_t)n, fmt, ap);
    va_end(ap);
    return RT_OK;
}
