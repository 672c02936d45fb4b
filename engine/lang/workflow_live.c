/* workflow_live.c — refcounted snapshots of the workflow set (see workflow_live.h). One
 * mutex guards the current pointer and every snapshot's count; holding it is a few
 * instructions, so readers on hot paths do not contend for long. */
#include "workflow_live.h"

#include <pthread.h>
#include <stdlib.h>

struct rt_workflow_live {
    pthread_mutex_t mu;
    rt_workflow_set *current;
    uint64_t generation;
    rt_workflow_set handle; /* n 0, live = this */
};

rt_status rt_workflow_live_new(rt_workflow_set *initial, rt_workflow_live **out, rt_error *err)
{
    rt_workflow_live *l = calloc(1, sizeof *l);
    if (!initial)
        initial = calloc(1, sizeof *initial);
    if (!l || !initial) {
        free(l);
        rt_workflow_set_free(initial);
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&l->mu, NULL);
    initial->owner = l;
    l->current = initial;
    l->generation = 1;
    l->handle.live = l;
    *out = l;
    return RT_OK;
}

void rt_workflow_live_free(rt_workflow_live *l)
{
    if (!l)
        return;
    rt_workflow_set_free(l->current);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

const rt_workflow_set *rt_workflow_live_handle(rt_workflow_live *l)
{
    return &l->handle;
}

uint64_t rt_workflow_live_swap(rt_workflow_live *l, rt_workflow_set *next)
{
    next->owner = l;
    next->refs = 0;
    pthread_mutex_lock(&l->mu);
    rt_workflow_set *old = l->current;
    l->current = next;
    uint64_t g = ++l->generation;
    bool drop = old->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (drop)
        rt_workflow_set_free(old);
    return g;
}

uint64_t rt_workflow_live_generation(rt_workflow_live *l)
{
    pthread_mutex_lock(&l->mu);
    uint64_t g = l->generation;
    pthread_mutex_unlock(&l->mu);
    return g;
}

const rt_workflow_set *rt_workflow_set_acquire(const rt_workflow_set *set)
{
    if (!set || (!set->live && !set->owner))
        return set; /* a set of its own (validate, tests): nothing to count */
    /* A handle gives its current snapshot; a snapshot acquired again (a holder passing it
     * on) is counted again, so that every release has its acquire. */
    rt_workflow_live *l = set->live ? set->live : set->owner;
    pthread_mutex_lock(&l->mu);
    rt_workflow_set *snap = set->live ? l->current : (rt_workflow_set *)set;
    snap->refs++;
    pthread_mutex_unlock(&l->mu);
    return snap;
}

void rt_workflow_set_release(const rt_workflow_set *snap)
{
    if (!snap || !snap->owner)
        return;
    rt_workflow_live *l = snap->owner;
    rt_workflow_set *s = (rt_workflow_set *)snap; /* the count is the only field written */
    pthread_mutex_lock(&l->mu);
    bool drop = --s->refs == 0 && s != l->current;
    pthread_mutex_unlock(&l->mu);
    if (drop)
        rt_workflow_set_free(s);
}
