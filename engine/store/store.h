/* store.h — the store's public API: every read and write of ratchet's tables, grouped below by
 * table family, each family in its own file over store_internal.h (which only store/ includes).
 * One rt_store is one PostgreSQL connection, used by one thread at a time. */
#ifndef RT_STORE_H
#define RT_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "run_status.h"
#include "status.h"
#include "workflow.h"

#define RT_WAKE_CHANNEL "ratchet_wake"

typedef struct rt_store rt_store;

/* ---- Connection, transactions, migrations, LISTEN/NOTIFY (store.c) ---- */

/* Connects. Errors never echo the URL (it may hold a password). */
rt_status rt_store_open(const char *url, rt_store **out, rt_error *err);
void rt_store_close(rt_store *st);
/* Re-establishes a broken connection (LISTENs are re-issued). */
rt_status rt_store_reconnect(rt_store *st, rt_error *err);
bool rt_store_healthy(rt_store *st);
/* Changes with every connection made (a new server session: its statements are planned
 * and caches cold the first time). */
uint64_t rt_store_session(const rt_store *st);

/* Applies the embedded migrations not yet recorded, under an advisory lock so two
 * processes starting together migrate once. *applied gets how many ran (may be NULL). */
rt_status rt_store_migrate(rt_store *st, int *applied, rt_error *err);

/* A transaction on this connection (completions, ingest, run creation). */
rt_status rt_store_begin(rt_store *st, rt_error *err);
rt_status rt_store_commit(rt_store *st, rt_error *err);
void rt_store_rollback(rt_store *st);
/* Ends a transaction by its outcome: commits when s is RT_OK, rolls back when it is not or
 * when the commit fails. Returns the transaction's outcome. */
rt_status rt_store_end(rt_store *st, rt_status s, rt_error *err);

/* LISTEN on channel, then wait up to timeout_ms for a notification. */
rt_status rt_store_listen(rt_store *st, const char *channel, rt_error *err);
rt_status rt_store_wait_notify(rt_store *st, int timeout_ms, bool *notified, rt_error *err);

/* The connection itself (NULL while disconnected; never closed by the caller), for a thread
 * that waits on its socket for notifications (scheduler, workflow watch). */
struct pg_conn;
struct pg_conn *rt_store_pg(rt_store *st);
/* A statement without parameters or results (PQexec: may hold several). */
rt_status rt_store_exec_simple(rt_store *st, const char *sql, rt_error *err);

/* This deployment's id (16 hex digits, ratchet.instance), read once per connection. */
rt_status rt_store_instance_id(rt_store *st, char out[17], rt_error *err);
/* An id for an event the engine makes: "ratchet:<instance>:" followed by fmt (printf). */
rt_status rt_store_engine_event_id(rt_store *st, char *buf, size_t len, rt_error *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---- Runs: pinned definitions, creation, queries, cancel, deadlines (store_runs.c) ---- */

/* Stores a definition by content hash (no-op when present). */
rt_status rt_store_put_workflow(rt_store *st, const rt_workflow *wf, rt_error *err);
/* Fetches a pinned definition; *def is a new reference. */
rt_status rt_store_get_definition(rt_store *st, const char *hash, json_t **def, rt_error *err);

typedef struct rt_run_request {
    const rt_workflow *wf;
    json_t *trigger;   /* borrowed: {"type": "manual"|"event"|"cron"|"invoke", ...} */
    json_t *event;     /* borrowed: the envelope templates see as `event` */
    int64_t run_at_ms; /* 0 = now */
    const char *dedupe_key; /* optional: at most one run per (workflow, key), ever */
    const char *parent_run_id;  /* invoke: the run (and step) this child reports to */
    const char *parent_step_id;
    json_t *prefill;            /* borrowed, optional: {step_id: {status, output}} carried over
                                 * (replay --from); the steps they make ready are enqueued */
    const rt_workflow_set *set; /* borrowed, optional: the loaded workflows that a held
                                 * run's ratchet.approval.requested may start (NULL: none) */
    char id[37];       /* out: the new run's id, or "" when dedupe_key existed already or
                        * admission created nothing; or the existing run a request joined */
    char reason[256];  /* out: "" when a new run was simply created; else what admission did:
                        * why nothing was created, which run was joined, until when throttled */
} rt_run_request;

/* Stores runs exactly as asked (their definitions, run rows, root steps and queue items)
 * inside the caller's transaction (rt_store_begin ... rt_store_commit), then wakes idle
 * workers with one NOTIFY. A request whose dedupe_key is already taken creates nothing
 * and gets id "". No policy here: every path creates runs through rt_run_create_tx
 * (run/create.h), which applies the approval gate and flow control and then calls this. */
rt_status rt_store_create_runs_tx(rt_store *st, rt_run_request *reqs, size_t n, rt_error *err);

/* The event a run was started with (its envelope). *out new reference. */
rt_status rt_store_run_event(rt_store *st, const char *run_id, json_t **out, rt_error *err);

/* `ratchet show --json` object (with_steps) or the `runs --json` element. *out new ref. */
rt_status rt_store_get_run(rt_store *st, const char *id, bool with_steps, json_t **out, rt_error *err);

typedef struct rt_run_filter {
    const char *workflow; /* NULL = any */
    const char *status;   /* NULL = any */
    int limit;            /* <= 0: 50 */
} rt_run_filter;
/* Newest first. *out is a new JSON array. */
rt_status rt_store_list_runs(rt_store *st, const rt_run_filter *f, json_t **out, rt_error *err);

/* {workflow_hash, workflow, event, trigger, status} of a run (replay). */
rt_status rt_store_run_source(rt_store *st, const char *id, json_t **out, rt_error *err);

/* Locks and lists unfinished runs of the workflows: [{id, workflow, event}]. */
rt_status rt_store_active_runs(rt_store *st, json_t *workflow_ids, json_t **out, rt_error *err);
/* runs: [{id, error}]: marks them cancelled and drops their idle queue items. */
rt_status rt_store_cancel_runs(rt_store *st, json_t *runs, rt_error *err);

/* Ends up to RT_SWEEP_BATCH unfinished runs past their deadline (timed_out) or still queued
 * past their start deadline (expired), but none of the run ids in skip (a JSON array),
 * dropping their idle queue items (a full pass means more may be waiting).
 * Autocommits. *ended: [{id, workflow, status, error, parent_run_id, parent_step_id}]. */
#define RT_SWEEP_BATCH 100
rt_status rt_store_sweep_deadlines(rt_store *st, json_t *skip, json_t **ended, rt_error *err);

/* ---- The step queue: claims, leases, wakes, item memos (store_queue.c); the completion batch (store_batch.c) ---- */

typedef struct rt_claim {
    int64_t queue_id;
    char run_id[37];
    char *step_id;
    char *workflow_id;
    char wf_hash[65];
    char *run_status;  /* the run's status when claimed */
    int attempt;       /* this attempt's number (1-based) */
    json_t *state;     /* what a suspension left, or NULL */
    json_t *event;
    json_t *trigger;
    int64_t run_created_ms;
    int64_t run_started_ms; /* 0 when not started */
    int priority;
    bool slow;
    char *ckey;        /* concurrency key of the run, or NULL */
    int climit;
    char *parent_run_id; /* invoke: the waiting parent, or NULL */
    char *parent_step_id;
    int64_t fence;       /* the step row's fencing token: grows with every slow claim of the
                          * step (0 for quick steps, which are never leased) */
} rt_claim;

/* Claims up to limit due slow items (exec, http, sql), ordered by priority then run_at,
 * with FOR UPDATE SKIP LOCKED, leases each to owner for lease_ms (their run_at moves to
 * the lease's end) and marks their step rows and runs running, in one commit. Each claim
 * adds one to its step row's fence. The lease runs from the transaction's start: a caller
 * that reads its clock before this call knows a deadline the database never passes first. */
rt_status rt_store_claim(rt_store *st, const char *owner, int limit, int64_t lease_ms, rt_claim **out, size_t *n,
                         rt_error *err);
/* Inside the caller's transaction: locks up to limit due quick items (FOR UPDATE SKIP
 * LOCKED) and their runs (in id order, waiting for them) without writing anything; the
 * same transaction completes them. A claim's run_status is the locked run's. *slow_due:
 * whether a slow item is due too (answered by the same round trip). */
rt_status rt_store_claim_quick(rt_store *st, int limit, rt_claim **out, size_t *n, bool *slow_due, rt_error *err);
/* Inside the transaction that created these runs: locks their due quick items (runs
 * under a concurrency key excepted) for the same transaction to run and complete; the
 * rows of rt_store_claim_quick. *queued: how many queue items those runs have in all, the
 * claimed ones included (the others, slow, keyed or not yet due, are a worker's). *steps
 * (new reference): the claimed runs' step rows as rt_store_load_steps gives them, read
 * with the claim; NULL when nothing was claimed or a claimed run is older than this
 * transaction (a debounce joined it), whose rows must be read after the lock. */
rt_status rt_store_claim_created(rt_store *st, const char *const *run_ids, size_t n_runs, rt_claim **out, size_t *n,
                                 size_t *queued, json_t **steps, rt_error *err);
/* Runs created while defer is set send no NOTIFY: the ingest sets it around the runs
 * whose first steps it runs itself (most end there, and a wake would send a worker to an
 * empty claim), then calls rt_store_wake if anything is left for the workers. Returns the
 * setting it replaces, for the caller to put back. */
bool rt_store_defer_wake(rt_store *st, bool defer);
/* NOTIFYs the workers (at the commit). */
rt_status rt_store_wake(rt_store *st, rt_error *err);
/* Whether a slow item is due (one index probe): spares a claim transaction when none is. */
rt_status rt_store_slow_due(rt_store *st, bool *due, rt_error *err);
/* Both fill *out with an array the caller frees with rt_claims_free. */
void rt_claims_free(rt_claim *c, size_t n);

/* Marks runs running (for runs whose slow step is about to execute). */
rt_status rt_store_mark_running(rt_store *st, const char *const *run_ids, size_t n, rt_error *err);

/* Step rows of runs: {run_id: {step_id: {"status": s, "output": o}}}. *out new ref. */
rt_status rt_store_load_steps(rt_store *st, const char *const *run_ids, size_t n, json_t **out, rt_error *err);

/* Locks runs (in id order, so completions never deadlock) and returns
 * {run_id: {"status": s, "steps": {step_id: {"status", "output"}}}} as they are now. */
rt_status rt_store_lock_runs(rt_store *st, const char *const *run_ids, size_t n, json_t **out, rt_error *err);
/* Locks the queue items still leased to owner; *owned is a JSON array of their ids. */
rt_status rt_store_lock_owned(rt_store *st, const char *owner, const int64_t *ids, size_t n, json_t **owned,
                              rt_error *err);
/* The completion batch: everything one executor transaction writes, as typed rows. A batch
 * owns what it holds (strings are copied, JSON values referenced) and is filled with the
 * rt_store_batch_add_* calls; rt_store_apply turns it into its statements' parameters.
 * Times are unix ms, 0 for none. */
typedef struct rt_batch_step { /* a step row, upserted */
    char run_id[37];
    char *step_id;
    rt_step_status status;
    int attempts;
    json_t *output, *error_detail, *state; /* NULL: SQL null */
    char *error;
    int64_t started_at, finished_at;
} rt_batch_step;
typedef struct rt_batch_enqueue { /* a new queue item (an existing one for the step is kept) */
    char run_id[37];
    char *step_id;
    int priority;
    bool slow;
    int64_t run_at; /* 0: now */
    char *ckey;     /* concurrency key, or NULL */
    int climit;
} rt_batch_enqueue;
typedef struct rt_batch_requeue { /* a claimed item handed back, due at run_at */
    int64_t queue_id;
    int64_t run_at;
    char *step_id; /* whose item it is (not written: lets the executor find it again) */
} rt_batch_requeue;
typedef struct rt_batch_run { /* a run that advanced or ended */
    char run_id[37];
    rt_run_status status;
    json_t *output; /* written only when the run ended (finished_at > 0) */
    char *error;    /* NULL: the run's error is kept */
    int64_t started_at, finished_at;
    const char *workflow; /* borrowed, not written: for the caller's metrics after the commit */
} rt_batch_run;
typedef struct rt_batch_attempt { /* a failed attempt, for the run's history */
    char run_id[37];
    char *step_id;
    int attempt;
    char *error;
    json_t *error_detail;
    int64_t started_at, finished_at;
} rt_batch_attempt;
typedef struct rt_batch_wake { /* a waiting step handed what it waited for (patch merged into its state) */
    char run_id[37];
    char *step_id;
    json_t *patch;
} rt_batch_wake;
typedef struct rt_batch_unwait { /* a wait_for_event step's waits, removed */
    char run_id[37];
    char *step_id;
} rt_batch_unwait;
typedef struct rt_batch_drop { /* an ended run: its unclaimed queue items go */
    char run_id[37];
} rt_batch_drop;

typedef struct rt_store_batch {
    rt_batch_step *steps;
    rt_batch_enqueue *enqueue;
    rt_batch_requeue *requeue;
    int64_t *dequeue; /* queue items done: deleted if still leased to owner (or locked here) */
    rt_batch_run *runs;
    rt_batch_attempt *attempts;
    rt_batch_drop *drop_runs;
    rt_batch_unwait *unwait;
    rt_batch_wake *wake;
    size_t n_steps, n_enqueue, n_requeue, n_dequeue, n_runs, n_attempts, n_drop_runs, n_unwait, n_wake;
    size_t cap[9];
    bool notify; /* send one NOTIFY (something became due) */
    bool nomem;  /* an add ran out of memory: rt_store_apply refuses the batch */
} rt_store_batch;

/* An empty batch (a zeroed struct is one too); free releases what it holds and leaves it
 * empty. */
void rt_store_batch_init(rt_store_batch *b);
void rt_store_batch_free(rt_store_batch *b);
/* Each add copies its row's strings and takes a new reference to its JSON values. */
void rt_store_batch_add_step(rt_store_batch *b, const rt_batch_step *row);
void rt_store_batch_add_enqueue(rt_store_batch *b, const rt_batch_enqueue *row);
void rt_store_batch_add_requeue(rt_store_batch *b, const rt_batch_requeue *row);
void rt_store_batch_add_dequeue(rt_store_batch *b, int64_t queue_id);
void rt_store_batch_add_run(rt_store_batch *b, const rt_batch_run *row);
void rt_store_batch_add_attempt(rt_store_batch *b, const rt_batch_attempt *row);
void rt_store_batch_add_drop(rt_store_batch *b, const char *run_id);
void rt_store_batch_add_unwait(rt_store_batch *b, const char *run_id, const char *step_id);
void rt_store_batch_add_wake(rt_store_batch *b, const char *run_id, const char *step_id, json_t *patch);
/* Moves every row of src to the end of dst (src is left empty); dst->notify |= src->notify. */
void rt_store_batch_move(rt_store_batch *dst, rt_store_batch *src);
/* dst (empty) becomes a deep copy of src. */
void rt_store_batch_copy(rt_store_batch *dst, const rt_store_batch *src);

/* Writes the batch inside the caller's transaction: steps upserted, dequeue deleted,
 * requeue unleased, enqueue inserted, runs updated, attempts recorded, drop_runs' idle
 * items removed, waits removed, wakes merged; one NOTIFY when something became due. */
rt_status rt_store_apply(rt_store *st, const char *owner, const rt_store_batch *batch, rt_error *err);

/* Extends the leases of items still held by owner; *run_ended says whether one of their
 * runs ended meanwhile (cancelled, failed, ...), so the step should be stopped; *renewed
 * counts the items that were still owner's (fewer than n: a lease was handed on). */
rt_status rt_store_renew(rt_store *st, const char *owner, const int64_t *ids, size_t n, int64_t lease_ms,
                         bool *run_ended, size_t *renewed, rt_error *err);
/* Gives back every item leased by owners starting with prefix (graceful stop). */
rt_status rt_store_release(rt_store *st, const char *owner_prefix, int *released, rt_error *err);

/* Wall-clock ms of the earliest queue item (due or leased), and of the earliest one still
 * in the future; 0 when there is none. */
rt_status rt_store_next_due(rt_store *st, int64_t *ms, int64_t *next_future_ms, rt_error *err);

/* wake: [{run_id, step_id, patch}]: merges patch into the waiting step's state and makes it
 * due now (invoke: the child's result). Inside the caller's transaction. */
rt_status rt_store_wake_steps(rt_store *st, json_t *wake, rt_error *err);

/* for_each items of a slow step (step_items). load gives {"<index>": output} of the items
 * memoized so far whose value (in items, the step's current array) is unchanged; save
 * memoizes one only while the queue item queue_id is still leased by owner (*held false
 * when it is not: stop, the step belongs to someone else now). */
rt_status rt_store_items_load(rt_store *st, const char *run_id, const char *step_id, json_t *items, json_t **out,
                              rt_error *err);
rt_status rt_store_item_save(rt_store *st, int64_t queue_id, const char *owner, const char *run_id,
                             const char *step_id, int idx, json_t *item, json_t *output, bool *held, rt_error *err);

/* ---- Events, wait_for_event waits, the outbox (store_events.c) ---- */

/* Events (inside the caller's transaction for ingest). events: [{id, name, ts (ms),
 * envelope, transport}]; *inserted gets the ids that were new (a JSON array). */
rt_status rt_store_insert_events(rt_store *st, json_t *events, json_t **inserted, rt_error *err);
/* Which of ids (JSON array of strings) are stored events: *out a new JSON array. */
rt_status rt_store_events_existing(rt_store *st, json_t *ids, json_t **out, rt_error *err);
/* Newest first, each with the runs it started. name may be NULL. */
rt_status rt_store_list_events(rt_store *st, const char *name, int limit, json_t **out, rt_error *err);

/* wait_for_event and cancel_on, inside the caller's transaction. names: JSON array of
 * event names (or workflow ids for active_runs). */
rt_status rt_store_lock_event_names(rt_store *st, json_t *names, bool exclusive, rt_error *err);
/* Envelopes of events with one of names received since from_ms, oldest first (<= 1000). */
rt_status rt_store_events_since(rt_store *st, json_t *names, int64_t from_ms, json_t **out, rt_error *err);
/* waits: [{run_id, step_id, name, if_expr}] */
rt_status rt_store_insert_waits(rt_store *st, json_t *waits, rt_error *err);
/* [{run_id, step_id, name, if, event (the run's trigger event)}] waiting for names. */
rt_status rt_store_find_waits(rt_store *st, json_t *names, json_t **out, rt_error *err);
/* matched: [{run_id, step_id, envelope}]: takes those waits (once, whoever deletes them
 * first), hands the event to the step and makes it due now. */
rt_status rt_store_match_waits(rt_store *st, json_t *matched, int *woken, rt_error *err);

/* The outbox: events the engine made, to publish to the brokers. take locks up to limit
 * of them (inside the caller's transaction): [{id, name, envelope}]; done clears them. */
rt_status rt_store_outbox_take(rt_store *st, int limit, json_t **out, rt_error *err);
rt_status rt_store_outbox_done(rt_store *st, json_t *ids, rt_error *err);

/* ---- Retention (store_retention.c) ---- */

/* Deletes up to batch events received more than older_than_ms ago. */
rt_status rt_store_delete_old_events(rt_store *st, int64_t older_than_ms, int batch, int *deleted, rt_error *err);
/* The same for finished runs (by finished_at), with everything that belongs to them. */
rt_status rt_store_delete_old_runs(rt_store *st, int64_t older_than_ms, int batch, int *deleted, rt_error *err);

/* ---- Benchmarks (store_bench.c, store_bench.h) ---- */

/* Benchmarks: stored events of one name; latency (ms) from data.sent_us to the start
 * (finished false) or the commit (true) of the first completed step of runs created since
 * since_ms. */
rt_status rt_store_count_events(rt_store *st, const char *name, int64_t *n, rt_error *err);
rt_status rt_store_bench_latency(rt_store *st, int64_t since_ms, bool finished, int64_t *n, double *p50, double *p99,
                                 rt_error *err);

/* Scratch databases for `ratchet bench`; name is quoted as an identifier. */
rt_status rt_store_create_database(rt_store *st, const char *name, rt_error *err);
rt_status rt_store_drop_database(rt_store *st, const char *name, rt_error *err);
/* Items in the queue (due or not). */
rt_status rt_store_queue_size(rt_store *st, int64_t *n, rt_error *err);
/* A server setting's value, e.g. "synchronous_commit". */
rt_status rt_store_setting(rt_store *st, const char *name, char *buf, size_t len, rt_error *err);

#endif
