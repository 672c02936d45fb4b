/* workflow_watch.h — keeps a process's live workflow set in step with the registry: a
 * thread LISTENs on ratchet_workflows and reloads the current set from PostgreSQL on
 * every change (any process's), swaps it in and calls on_change; with `watch` it also
 * syncs the workflows directory on inotify events, and on rt_workflow_watch_resync
 * (SIGHUP). A bad file is reported and its workflow keeps its version. */
#ifndef RT_WORKFLOW_WATCH_H
#define RT_WORKFLOW_WATCH_H

#include <stdbool.h>

#include "config.h"
#include "status.h"
#include "workflow_live.h"

typedef struct rt_workflow_watch rt_workflow_watch;

/* Called on the watch thread after a new set was swapped in. */
typedef void (*rt_workflow_change_fn)(void *arg);

/* cfg and live are borrowed and must outlive the watcher. dir: the workflows directory
 * (synced on resync, and on inotify events when watch is true). */
rt_status rt_workflow_watch_start(const rt_config *cfg, rt_workflow_live *live, const char *dir, bool watch,
                                  rt_workflow_change_fn on_change, void *arg, rt_workflow_watch **out,
                                  rt_error *err);
/* Asks the thread to sync the directory and reload (async-signal-safe: one write). */
void rt_workflow_watch_resync(rt_workflow_watch *w);
void rt_workflow_watch_stop(rt_workflow_watch *w);

#endif
