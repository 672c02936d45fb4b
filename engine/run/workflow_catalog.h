/* workflow_catalog.h — the workflow registry's policy (docs/workflows.md "Registry"):
 * PostgreSQL holds every version and which is current; the workflows directory is a
 * declarative source synced into it; apply / remove / pause / resume change it for every
 * process (NOTIFY ratchet_workflows) and each change is an audit record. Runs stay pinned
 * to the version they started with. SQL in store_workflows.c. */
#ifndef RT_WORKFLOW_CATALOG_H
#define RT_WORKFLOW_CATALOG_H

#include <jansson.h>
#include <stdbool.h>

#include "status.h"
#include "store.h"
#include "workflow.h"

typedef struct rt_catalog_sync_result {
    size_t files;    /* good workflow files in the directory */
    size_t errors;   /* bad files (reported through on_error; their workflows keep their version) */
    size_t applied;  /* new current versions */
    size_t removed;  /* file workflows whose file is gone */
} rt_catalog_sync_result;

/* Syncs dir into the registry in one transaction: a file whose content differs from what
 * was last synced from it becomes the current version (source "file"); a workflow last
 * synced from a file that is gone (and not merely bad) is removed; workflows applied
 * through the API are left alone. on_error (may be NULL) gets each bad file. */
rt_status rt_catalog_sync_dir(rt_store *st, const char *dir, const char *actor, rt_workflow_error_fn on_error,
                              void *arg, rt_catalog_sync_result *res, rt_error *err);

/* The current set (not removed), rebuilt from the stored definitions. */
rt_status rt_catalog_load(rt_store *st, rt_workflow_set **out, rt_error *err);
/* The current version of one workflow: RT_ERR_NOT_FOUND when unknown or removed. */
rt_status rt_catalog_find(rt_store *st, const char *id, rt_workflow **out, rt_error *err);

/* Makes wf the current version (source "api" or "file"); *changed false when it was
 * already. */
rt_status rt_catalog_apply(rt_store *st, const rt_workflow *wf, const char *source, const char *actor,
                           bool *changed, rt_error *err);
/* No new runs; runs in flight finish unless cancel_running cancels them. *in_flight gets
 * how many there were. */
rt_status rt_catalog_remove(rt_store *st, const char *id, const char *actor, bool cancel_running,
                            size_t *in_flight, rt_error *err);
/* Holds every new run of the workflow (cron ticks, events, manual runs) until resume. */
rt_status rt_catalog_pause(rt_store *st, const char *id, const char *actor, bool *changed, rt_error *err);
/* on_resume "run" | "skip" | NULL (the workflow's on_resume, default run): starts the held
 * requests on the current version, or drops them. */
rt_status rt_catalog_resume(rt_store *st, const char *id, const char *actor, const char *on_resume,
                            bool *changed, size_t *started, size_t *skipped, rt_error *err);

/* The same four inside the caller's transaction (a proposal applied with its decision). */
rt_status rt_catalog_apply_tx(rt_store *st, const rt_workflow *wf, const char *source, const char *actor,
                              bool *changed, rt_error *err);
rt_status rt_catalog_remove_tx(rt_store *st, const char *id, const char *actor, bool cancel_running,
                               size_t *in_flight, rt_error *err);
rt_status rt_catalog_pause_tx(rt_store *st, const char *id, const char *actor, bool *changed, rt_error *err);
rt_status rt_catalog_resume_tx(rt_store *st, const char *id, const char *actor, const char *on_resume,
                               bool *changed, size_t *started, size_t *skipped, rt_error *err);

/* [{id, version, source, file, enabled, removed, paused, system, triggers, last_run,
 * in_flight, held, ...}] */
rt_status rt_catalog_list(rt_store *st, json_t **out, rt_error *err);
/* Every change of a workflow, oldest first; an apply carries `diff` (unified, against the
 * previous version, definitions pretty-printed with sorted keys) and `definition`. */
rt_status rt_catalog_history(rt_store *st, const char *id, json_t **out, rt_error *err);
/* The unified diff between two definitions (either may be NULL), as history shows it. */
char *rt_catalog_diff(const json_t *from, const json_t *to, const char *label_from, const char *label_to);

#endif
