/* ingest.h — turns validated events into stored events and triggered runs: one
 * transaction per batch stores the events (de-duplicated by id), matches them against the
 * loaded workflows' event triggers (name pattern, then `if`) and creates the runs. Only
 * after that commit may a broker message be acknowledged. */
#ifndef RT_INGEST_H
#define RT_INGEST_H

#include <jansson.h>
#include <stddef.h>

#include "event.h"
#include "status.h"
#include "store.h"
#include "workflow.h"

/* What happened to one event of a batch. */
typedef struct rt_ingest_result {
    bool duplicate;   /* its id was stored before: nothing started */
    json_t *run_ids;  /* owned: JSON array of the runs it started */
} rt_ingest_result;

/* Stores events[0..n) and starts the runs they trigger, in one transaction on st.
 * set is read-only here (shared between threads). results (may be NULL) has n entries the
 * caller frees with rt_ingest_results_clear. On failure nothing was stored: the caller
 * must not acknowledge the messages. */
rt_status rt_ingest_events(const rt_workflow_set *set, rt_store *st, rt_event *const *events, size_t n,
                           const char *transport, rt_ingest_result *results, rt_error *err);
void rt_ingest_results_clear(rt_ingest_result *results, size_t n);
/* The same inside the caller's transaction (events the engine makes: on_failure). */
rt_status rt_ingest_events_tx(const rt_workflow_set *set, rt_store *st, rt_event *const *events, size_t n,
                              const char *transport, rt_error *err);

/* The first steps at ingest: a runner (the engine, which registers itself when it starts
 * unless RATCHET_RUN_AT_INGEST=false) runs the quick first steps of the runs a batch just
 * created inside the batch's own transaction, so an event's first steps commit with the
 * event: one commit instead of three and no hand-off to a worker. Only batches that own
 * their transaction (rt_ingest_events) use it; if the runner fails, the batch is stored
 * again without it and the runs wait for a worker as before. The runs are created without
 * a wake for the workers; the runner sets *left when it left any of their queue items
 * (slow, keyed, not yet due), and the batch then sends one. */
typedef rt_status (*rt_ingest_runner_fn)(void *arg, rt_store *st, const char *const *run_ids, size_t n,
                                         void **after, bool *left, rt_error *err);
/* Called once after the batch's commit (committed) or rollback with what the runner left in
 * *after (may be NULL): counts and traces what finished only once it is surely stored. */
typedef void (*rt_ingest_after_fn)(void *after, bool committed);
/* Registers fn and after with their arg. rt_ingest_unset_runner(arg) removes them if they
 * are still arg's, after waiting for a runner call in flight: once it returns, fn is no
 * longer called (after needs nothing of arg). */
void rt_ingest_set_runner(rt_ingest_runner_fn fn, rt_ingest_after_fn after, void *arg);
void rt_ingest_unset_runner(void *arg);

/* on_failure of a run that ended badly (failed, timed_out, expired, rejected): {"event":
 * NAME} stores (and triggers on) an event {run_id, workflow, status, error}; {"workflow":
 * ID} starts that workflow with it. In the caller's transaction, at most once per run
 * (their ids derive from the run's). rule NULL does nothing. */
rt_status rt_ingest_on_failure(const rt_workflow_set *set, rt_store *st, const json_t *rule, const char *workflow_id,
                               const char *run_id, const char *status, const char *error, rt_error *err);

/* Does workflow wf start for event ev? Checks enabled, each event trigger's pattern and
 * `if`. An `if` that fails to evaluate counts as no (and is logged). */
bool rt_ingest_matches(const rt_workflow *wf, const rt_event *ev);

#endif
