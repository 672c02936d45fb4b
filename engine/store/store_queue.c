/* store_queue.c — the step queue: claims (SKIP LOCKED, leases, fences), the completion batch,
 * lease renewal and release, wakes, and for_each item memos. The drain's hot path (the
 * completion batch is written by store_batch.c). Statements in the table below; store.c
 * prepares and runs them. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 when a slow item is due, else 0: ordered like S_CLAIM_PICK so the plan is the same
 * index probe whatever the statistics say. */
#define SLOW_DUE_SQL                                                                                          \
    "(select count(*) from (select 1 from ratchet.queue q0 where q0.slow and q0.run_at <= now()"             \
    " order by q0.slow, q0.priority, q0.run_at, q0.id limit 1) t0)"

/* Not claimable: the item's run is paused, or still queued past its start deadline (the
 * sweep expires it). Read as a value of the run found by its primary key, so the plan is
 * that probe per item whatever the statistics say. (As "not exists (… where r.id = run_id
 * and (r.status = 'paused' or …))" the planner could anti-join it through runs_by_status
 * when the statistics said no run was queued: every item then scanned every unfinished
 * run, and a claim cost as much as the whole backlog.) */
#define RUN_HOLDS_ITEM(run_id)                                                                                \
    "(select r.status = 'paused' or (r.status = 'queued' and r.start_deadline < now())"                     \
    " from ratchet.runs r where r.id = " run_id ") is not true"

/* The runs of the items a quick claim locked (its CTE q), as an array: runs are then
 * probed by primary key for them, and steps by the joined rows. Joined to the CTE alone, a
 * generic plan (the limit is a parameter, so the CTE looks large) hashes it against a
 * sequential scan of the whole table, which grows with every run ever kept. (Not on the
 * steps join too: an index scan per row with an array key sorts the array on every
 * rescan.) */
#define CLAIMED_RUNS "array(select run_id from q)"

/* The step row of a claimed item (q), read by its primary key whatever the statistics
 * say: joined plainly, a generic plan (the claim's limit is a parameter, so q looks like a
 * tenth of the queue) could hash the whole steps table for a backlog large enough. */
#define STEP_OF_ITEM                                                                                          \
    "select attempts, state, fence from ratchet.steps where run_id = q.run_id and step_id = q.step_id offset 0"

/* How many queue items the runs $1 have: a probe of queue_run_id_step_id_key per run, as a
 * subquery per run so that no plan has another choice. (An = any() may plan a scan of the
 * whole queue, which sleeping and scheduled runs keep large; a join did too, a full scan of
 * the index with 39,000 heap fetches a call, when the statistics said the queue was empty:
 * autovacuum analyzes it drained, then it fills faster than it is analyzed again.) */
#define QUEUED_COUNT_SQL                                                                                      \
    "select coalesce(sum((select count(*) from ratchet.queue c where c.run_id = u.id)), 0)::bigint"           \
    " from unnest($1::uuid[]) u(id)"

/* The due quick items of the runs $1, read per run by queue_run_id_step_id_key whatever
 * the statistics say (the OFFSET keeps the conditions out of the probe: with a queue the
 * statistics called empty, "not slow and run_at <= now()" made the planner scan queue_claim,
 * every due quick item, instead). Then locked in id order, where the same test, written so
 * that no index can take it, is checked again on the row as locked (a debounce may hand
 * over an older run whose item a worker leased meanwhile). */
#define CREATED_DUE_IDS                                                                                       \
    "select c.id from unnest($1::uuid[]) u(id), lateral (select id, slow, run_at from ratchet.queue"         \
    " where run_id = u.id offset 0) c where not c.slow and c.run_at <= now()"

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

/* Runs that advanced or ended. A run that started has no start deadline any more (it would
 * keep the run in runs_deadlines' overdue range, where every sweep steps over it). */
#define APPLY_RUNS_SQL(p)                                                                                     \
    "update ratchet.runs r set status = x.status,"                                                          \
    " output = case when x.finished_at > 0 then x.output else r.output end,"                                \
    " error = coalesce(x.error, r.error),"                                                                  \
    " started_at = coalesce(r.started_at, case when x.started_at > 0 then " TS("x.started_at") " end),"     \
    " start_deadline = case when r.started_at is null and coalesce(x.started_at, 0) <= 0"                   \
    "  then r.start_deadline end,"                                                                          \
    " finished_at = case when x.finished_at > 0 then " TS("x.finished_at") " else r.finished_at end "      \
    "from jsonb_to_recordset(" p "::jsonb) as x(id uuid, status text, output jsonb, error text,"            \
    " started_at bigint, finished_at bigint) where r.id = x.id and r.id = any(" JSON_KEYS(p, "id", "uuid") ")"

const char *const rt_store_sql_queue[S_COUNT] = {
    /* Slow items (exec, http, sql), in one transaction: pick (skipping keys whose running
     * count is at their concurrency limit, and items of paused runs), re-check the key
     * under its advisory lock, then lease to owner (the lease is their run_at) and mark the
     * step rows running (made here if missing, like the quick claim's left join). */
    [S_CLAIM_PICK] =
        "select q.id, q.ckey, coalesce(q.climit, 0) from ratchet.queue q where q.slow and q.run_at <= now()"
        " and " RUN_HOLDS_ITEM("q.run_id")
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
        " and " RUN_HOLDS_ITEM("run_id")
        " order by slow, priority, run_at, id limit $1::int for update skip locked"
        ") "
        "select q.id, q.run_id, q.step_id, r.workflow_id, r.workflow_hash, r.status,"
        " coalesce(s.attempts, 0) + case when s.state is null then 1 else 0 end, s.state::text,"
        " r.event::text, r.trigger::text, " MS("r.created_at") ", coalesce(" MS("r.started_at") ", 0),"
        " q.priority, q.slow, r.ckey, coalesce(r.climit, 0), r.parent_run_id::text, r.parent_step_id,"
        " coalesce(s.fence, 0), " SLOW_DUE_SQL " "
        "from q join ratchet.runs r on r.id = q.run_id and r.id = any(" CLAIMED_RUNS ")"
        " left join lateral (" STEP_OF_ITEM ") s on true "
        "order by r.id, q.priority, q.id for update of r",
    [S_SLOW_DUE] = "select " SLOW_DUE_SQL,
    /* The due quick items of runs this transaction created (rt_store_claim_created): the
     * same columns as S_CLAIM_QUICK, then how many queue items those runs have in all, then
     * the run's step rows as S_LOAD_STEPS reads them, if this transaction wrote every one of
     * them (else NULL): rows no other transaction can have touched, so this statement's
     * snapshot is final even if it waited for a lock (a debounce may hand over an older
     * run). Runs under a concurrency key wait for a worker. */
    [S_CLAIM_CREATED] =
        "with q as (select id, run_id, step_id, priority, slow from ratchet.queue where id" ANY_OF(CREATED_DUE_IDS)
        " and (not slow and run_at <= now()) is true order by id for update) "
        "select q.id, q.run_id, q.step_id, r.workflow_id, r.workflow_hash, r.status,"
        " coalesce(s.attempts, 0) + case when s.state is null then 1 else 0 end, s.state::text,"
        " r.event::text, r.trigger::text, " MS("r.created_at") ", coalesce(" MS("r.started_at") ", 0),"
        " q.priority, q.slow, r.ckey, coalesce(r.climit, 0), r.parent_run_id::text, r.parent_step_id,"
        " coalesce(s.fence, 0), (" QUEUED_COUNT_SQL "),"
        " (select case when bool_and(a.xmin = pg_current_xact_id()::xid) then jsonb_object_agg(a.step_id,"
        "  jsonb_build_object('status', a.status, 'output', a.output))::text end"
        "  from ratchet.steps a where a.run_id = q.run_id) "
        "from q join ratchet.runs r on r.id = q.run_id and r.status = 'queued' and r.ckey is null"
        " left join lateral (" STEP_OF_ITEM ") s on true "
        "order by r.id, q.priority, q.id for update of r",
    [S_QUEUED_COUNT] = QUEUED_COUNT_SQL,
    [S_MARK_RUNNING] = "update ratchet.runs set status = 'running', started_at = coalesce(started_at, now()),"
                       " start_deadline = null "
                       "where id" ANY_OF("select id from ratchet.runs where id = any($1::uuid[])"
                       " and status in ('queued', 'sleeping', 'waiting') order by id for update"),
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
    [S_APPLY_DROP] = "delete from ratchet.queue where id" ANY_OF("select id from ratchet.queue"
                     " where run_id = any(" JSON_IDS("$1", "uuid") ") and locked_by is null"
                     " for update skip locked"),
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
    /* A suspended step (invoke) gets what it waited for and is due now. */
    [S_WAKE_STEPS] = "update ratchet.steps s set state = coalesce(s.state, '{}'::jsonb) || x.patch "
                     "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text, patch jsonb) "
                     "where s.run_id = x.run_id and s.step_id = x.step_id and s.status = 'waiting'",
    [S_WAKE_QUEUE] = "update ratchet.queue q set run_at = " RT_DUE_NOW_SQL " "
                     "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text) "
                     "where q.run_id = x.run_id and q.step_id = x.step_id and q.locked_by is null"
                     " and q.run_id = any(" JSON_KEYS("$1", "run_id", "uuid") ")",
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
};

static json_t *parse_or_null(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return json_loads(PQgetvalue(r, row, col), JSON_DECODE_ANY, NULL);
}

static rt_status parse_claims(PGresult *r, rt_claim **out, size_t *n, rt_error *err);

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
        s = rt_stmt_run(st, S_CLAIM_PICK, 1, p1, &pick, err);
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
                s = rt_stmt_run(st, S_CKEY_LOCK, 1, pk, &x, err);
                PQclear(x);
                x = NULL;
                if (s == RT_OK)
                    s = rt_stmt_run(st, S_CKEY_COUNT, 2, pc, &x, err);
                bool full = s == RT_OK && atoi(PQgetvalue(x, 0, 0)) >= atoi(PQgetvalue(pick, i, 2));
                PQclear(x);
                if (full) {
                    const char *pd[] = {id};
                    x = NULL;
                    s = rt_stmt_run(st, S_DEFER, 1, pd, &x, err);
                    PQclear(x);
                    continue;
                }
            }
            ids[n_ids++] = id;
        }
    }
    if (s == RT_OK && n_ids > 0) {
        char *arr = rt_sql_array_literal(ids, n_ids);
        const char *params[] = {arr, lease, owner};
        s = rt_stmt_run(st, S_CLAIM, 3, params, &r, err);
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
    rt_status s = rt_stmt_run(st, S_CLAIM_QUICK, 1, params, &r, err);
    if (s != RT_OK)
        return s;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return rt_store_slow_due(st, slow_due, err);
    }
    *slow_due = PQgetvalue(r, 0, 19)[0] != '0'; /* after the columns rt_claim reads (0..18) */
    return parse_claims(r, out, n, err);
}

static rt_status run_uuids(rt_store *st, stmt_id id, const char *const *run_ids, size_t n, PGresult **res,
                           rt_error *err);

rt_status rt_store_claim_created(rt_store *st, const char *const *run_ids, size_t n_runs, rt_claim **out, size_t *n,
                                 size_t *queued, json_t **steps, rt_error *err)
{
    *out = NULL;
    *n = 0;
    *queued = 0;
    *steps = NULL;
    PGresult *r = NULL;
    rt_status s = run_uuids(st, S_CLAIM_CREATED, run_ids, n_runs, &r, err);
    if (s == RT_OK && PQntuples(r) == 0) { /* nothing quick and due: is anything else there? */
        PQclear(r);
        r = NULL;
        s = run_uuids(st, S_QUEUED_COUNT, run_ids, n_runs, &r, err);
        if (s == RT_OK)
            *queued = (size_t)strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        return s;
    }
    if (s != RT_OK)
        return s;
    *queued = (size_t)strtoull(PQgetvalue(r, 0, 19), NULL, 10); /* after the rt_claim columns (0..18) */
    *steps = json_object();
    for (int i = 0; *steps && i < PQntuples(r); i++) {
        const char *run = PQgetvalue(r, i, 1);
        json_t *rows = PQgetisnull(r, i, 20) ? NULL : parse_or_null(r, i, 20);
        if (!rows) { /* an older run: the caller reads the steps after the lock */
            json_decref(*steps);
            *steps = NULL;
        } else {
            json_object_set_new(*steps, run, rows);
        }
    }
    return parse_claims(r, out, n, err);
}

rt_status rt_store_wake(rt_store *st, rt_error *err)
{
    PGresult *r = NULL;
    rt_status s = rt_stmt_run(st, S_NOTIFY, 0, NULL, &r, err);
    PQclear(r);
    return s;
}

rt_status rt_store_slow_due(rt_store *st, bool *due, rt_error *err)
{
    PGresult *r = NULL;
    *due = false;
    rt_status s = rt_stmt_run(st, S_SLOW_DUE, 0, NULL, &r, err);
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
    char *arr = rt_sql_array_literal(run_ids, n);
    if (!arr)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {arr};
    rt_status s = rt_stmt_run(st, id, 1, params, res, err);
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
    char *arr = rt_sql_int_array_literal(ids, n);
    const char *params[] = {arr, owner};
    rt_status s = rt_stmt_single_json(st, S_LOCK_OWNED, 2, params, owned, err);
    free(arr);
    return s;
}

rt_status rt_store_renew(rt_store *st, const char *owner, const int64_t *ids, size_t n, int64_t lease_ms,
                         bool *run_ended, size_t *renewed, rt_error *err)
{
    *run_ended = false;
    *renewed = 0;
    if (n == 0)
        return RT_OK;
    char *arr = rt_sql_int_array_literal(ids, n);
    char lease[24];
    snprintf(lease, sizeof lease, "%lld", (long long)lease_ms);
    const char *params[] = {arr, owner, lease};
    PGresult *r = NULL;
    rt_status s = rt_stmt_run(st, S_RENEW, 3, params, &r, err);
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
    rt_status s = rt_stmt_run(st, S_RELEASE, 1, params, &r, err);
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
    rt_status s = rt_stmt_run(st, S_NEXT_DUE, 0, NULL, &r, err);
    if (s != RT_OK)
        return s;
    *ms = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *next_future_ms = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return RT_OK;
}

rt_status rt_store_wake_steps(rt_store *st, json_t *wake, rt_error *err)
{
    rt_status s = rt_stmt_json(st, S_WAKE_STEPS, wake, NULL, err);
    if (s == RT_OK)
        s = rt_stmt_json(st, S_WAKE_QUEUE, wake, NULL, err);
    if (s == RT_OK && json_array_size(wake) > 0)
        s = rt_store_wake(st, err);
    return s;
}

rt_status rt_store_items_load(rt_store *st, const char *run_id, const char *step_id, json_t *items, json_t **out,
                              rt_error *err)
{
    char *text = json_dumps(items, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[] = {run_id, step_id, text};
    rt_status s = rt_stmt_single_json(st, S_ITEMS_LOAD, 3, params, out, err);
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
        s = rt_stmt_run(st, S_ITEM_SAVE, 7, params, &r, err);
        if (s == RT_OK)
            *held = PQntuples(r) == 1 && atoi(PQgetvalue(r, 0, 0)) > 0;
        PQclear(r);
    }
    free(out_text);
    free(item_text);
    return s;
}
