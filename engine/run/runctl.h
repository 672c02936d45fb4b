/* runctl.h — acting on existing runs: pause, resume, cancel and replay one run (each one
 * code path with its audit record in the action's transaction), and the bulk form of
 * cancel and replay: a filter walked in bounded pages, each run acted on through the
 * single-run path. Used by the CLI and the HTTP API alike. */
#ifndef RT_RUNCTL_H
#define RT_RUNCTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "status.h"
#include "store.h"
#include "store_runctl.h"

/* Pauses (pause true) or resumes a run and audits it (run.pause / run.resume by actor,
 * details borrowed, may be NULL) in one transaction. *status gets the run's status after.
 * RT_ERR_NOT_FOUND: no such run; RT_ERR_CONFLICT: not pausable (ended, awaiting approval,
 * already paused) or not paused, the message says which. */
rt_status rt_run_pause(rt_store *st, const char *run_id, bool pause, const char *actor, const json_t *details,
                       char status[24], rt_error *err);

/* Cancels an unfinished run inside the caller's transaction, its error saying why, and
 * appends its run.cancel audit record (details borrowed). A run that already ended is
 * left as it was (*cancelled false, nothing audited). */
rt_status rt_run_cancel_tx(rt_store *st, const char *run_id, const char *why, const char *actor,
                           const json_t *details, bool *cancelled, rt_error *err);
/* The same in a transaction of its own. */
rt_status rt_run_cancel(rt_store *st, const char *run_id, const char *why, const char *actor, const json_t *details,
                        bool *cancelled, rt_error *err);

/* A new run of run_id's pinned definition and event (replay.h; from_step may be NULL,
 * from_what names the option for errors), created through rt_run_create_tx with its
 * run.replay audit record (details borrowed) in one transaction. new_id gets the new run
 * ("" when admission created none). */
rt_status rt_run_replay(rt_store *st, const char *run_id, const char *from_step, const char *from_what,
                        const char *actor, const json_t *details, char new_id[37], rt_error *err);

typedef enum rt_bulk_action { RT_BULK_CANCEL, RT_BULK_REPLAY } rt_bulk_action;

#define RT_BULK_IDS_MAX 100   /* run ids an answer lists */
#define RT_BULK_PAGE 200      /* runs read (and, for cancel, acted on in one transaction) at a time */
#define RT_BULK_ERRORS_MAX 10 /* per-run errors an answer lists */

typedef struct rt_bulk {
    rt_bulk_action action;
    rt_run_select filter;  /* until_ms is capped at the action's start: runs a replay makes
                            * are never picked up by the same action */
    const char *from_step; /* replay: carried over as in rt_run_replay */
    const char *reason;    /* cancel: appended to the runs' error */
    bool dry_run;          /* count and list, act on nothing */
    const char *actor;     /* audit actor */
    const char *via;       /* "cli", "api": in each audit record's details */
    bool agent;            /* an agent token: filter.entity_id must be its entity (the caller
                            * sets it), system workflows' runs are refused */
    /* out */
    int64_t matched;       /* runs the filter matches (an agent's: within its entity) */
    int64_t acted;         /* cancelled / replayed (dry run: what would be) */
    int64_t refused;       /* system workflows' runs an agent may not touch */
    int64_t skipped;       /* ended meanwhile (cancel) or failed to act on (see errors) */
    json_t *run_ids;       /* the first RT_BULK_IDS_MAX runs acted on (replay: the new ids in
                            * replay_ids, same order); free with rt_bulk_clear */
    json_t *replay_ids;
    json_t *errors;        /* [{id, error}], at most RT_BULK_ERRORS_MAX */
} rt_bulk;

/* Walks the filter in pages of RT_BULK_PAGE (never one transaction, never every id in
 * memory). Each run acted on gets its own audit record (details name the bulk action);
 * an agent's refusals are one flow-bounded refusal record per bulk action. */
rt_status rt_runs_bulk(rt_store *st, rt_bulk *b, rt_error *err);
void rt_bulk_clear(rt_bulk *b);
/* The answer object {matched, acted, refused, skipped, dry_run, run_ids, [replay_ids], errors}
 * (new reference). */
json_t *rt_bulk_json(const rt_bulk *b);

#endif
