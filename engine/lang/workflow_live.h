/* workflow_live.h — the set of workflows a process uses, swapped at runtime (the
 * registry, docs/workflows.md): readers take a refcounted snapshot for one piece of work
 * (an ingest batch, an HTTP request, a step) and a writer swaps in a new one; a snapshot
 * is freed when the last holder lets it go. Runs never depend on a snapshot: they are
 * pinned to their definition by hash (executor). */
#ifndef RT_WORKFLOW_LIVE_H
#define RT_WORKFLOW_LIVE_H

#include <stdint.h>

#include "workflow.h"

typedef struct rt_workflow_live rt_workflow_live;

/* Takes ownership of initial (may be NULL: an empty set). */
rt_status rt_workflow_live_new(rt_workflow_set *initial, rt_workflow_live **out, rt_error *err);
/* After every holder has released its snapshots. */
void rt_workflow_live_free(rt_workflow_live *l);
/* The handle long-lived components keep (in place of a loaded set): borrowed, valid until
 * rt_workflow_live_free. */
const rt_workflow_set *rt_workflow_live_handle(rt_workflow_live *l);
/* Makes next (owned) the current set; the old one goes when its last holder releases it.
 * Returns the new generation. */
uint64_t rt_workflow_live_swap(rt_workflow_live *l, rt_workflow_set *next);
uint64_t rt_workflow_live_generation(rt_workflow_live *l);

/* For a live handle: the current snapshot, held until rt_workflow_set_release. For a
 * snapshot: itself, held once more (so code given a snapshot may acquire and release it
 * like a handle). For any other set (or NULL): set itself, and release does nothing. */
const rt_workflow_set *rt_workflow_set_acquire(const rt_workflow_set *set);
void rt_workflow_set_release(const rt_workflow_set *snap);

#endif
