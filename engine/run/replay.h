/* replay.h — what a replay of a run needs, shared by `ratchet replay` and the API's
 * POST /api/v1/runs/{id}/replay: the run's pinned definition, event and trigger. */
#ifndef RT_REPLAY_H
#define RT_REPLAY_H

#include <jansson.h>

#include "status.h"
#include "store.h"
#include "workflow.h"

/* The request for the new run; req borrows the other fields. Free with rt_replay_clear. */
typedef struct rt_replay {
    rt_run_request req;
    rt_workflow *wf;  /* the pinned definition, rebuilt with its original hash */
    json_t *trigger;  /* the old trigger plus replay_of and replay_from */
    json_t *prefill;  /* from_step only: memoized outputs of the steps before it */
    json_t *src;
} rt_replay;

/* Fills *out for a replay of run_id (a UUID); from_step (may be NULL) carries over the
 * completed or skipped steps before it in file order. An unknown from_step is
 * RT_ERR_INVALID, its message prefixed with from_what (the option or field that named it).
 * Creates nothing: the caller creates out->req (and audits it). On error *out may be
 * partly filled: rt_replay_clear it either way. */
rt_status rt_replay_prepare(rt_store *st, const char *run_id, const char *from_step, const char *from_what,
                            rt_replay *out, rt_error *err);
/* Frees what rt_replay_prepare filled (not req.id); accepts a zeroed struct. */
void rt_replay_clear(rt_replay *r);

#endif
