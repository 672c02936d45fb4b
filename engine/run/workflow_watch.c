/* workflow_watch.c — the registry listener thread (see workflow_watch.h). It owns one
 * PostgreSQL connection (LISTEN) and, with --watch, an inotify descriptor; a pipe wakes
 * it for resync and stop. After a reconnect it reloads, since NOTIFYs sent while it was
 * away are lost. */
#include "workflow_watch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "log.h"
#include "store_workflows.h"
#include "util.h"
#include "workflow_catalog.h"

#define SETTLE_MS 50 /* inotify: sync once the directory has been quiet this long */

struct rt_workflow_watch {
    const rt_config *cfg;
    rt_workflow_live *live;
    char *dir;
    bool watch;
    rt_workflow_change_fn on_change;
    void *arg;
    pthread_t thread;
    bool started;
    atomic_bool stopping;
    atomic_bool resync;
    int wake[2];
    int inotify_fd;
    rt_store *st;
};

static void report_bad(void *arg, const char *file, const rt_error *e)
{
    (void)arg;
    rt_log(RT_LOG_ERROR, NULL, "workflows: %s (%s keeps its previous version)", e->msg, file ? file : "?");
}

static void sync_dir(rt_workflow_watch *w)
{
    rt_catalog_sync_result r;
    rt_error err;
    char actor[160];
    snprintf(actor, sizeof actor, "system:watch:%s", w->dir);
    if (rt_catalog_sync_dir(w->st, w->dir, actor, report_bad, NULL, &r, &err) != RT_OK)
        rt_log(RT_LOG_ERROR, NULL, "workflows: sync of %s failed: %s", w->dir, err.msg);
    else
        rt_log(RT_LOG_INFO, NULL, "workflows: synced %s: %zu file(s), %zu applied, %zu removed, %zu with errors",
               w->dir, r.files, r.applied, r.removed, r.errors);
}

static bool reload(rt_workflow_watch *w)
{
    rt_workflow_set *set = NULL;
    rt_error err;
    if (rt_catalog_load(w->st, &set, &err) != RT_OK) {
        rt_log(RT_LOG_WARN, NULL, "workflows: reload failed: %s", err.msg);
        return false;
    }
    size_t n = set->n;
    uint64_t g = rt_workflow_live_swap(w->live, set);
    rt_log(RT_LOG_INFO, NULL, "workflows: registry reloaded (generation %llu, %zu workflow(s))",
           (unsigned long long)g, n);
    if (w->on_change)
        w->on_change(w->arg);
    return true;
}

static bool connect_and_listen(rt_workflow_watch *w)
{
    rt_error err;
    rt_status s = w->st ? rt_store_reconnect(w->st, &err) : rt_store_open(w->cfg->database_url, &w->st, &err);
    if (s == RT_OK)
        s = rt_store_listen(w->st, RT_WORKFLOWS_CHANNEL, &err);
    if (s != RT_OK)
        rt_log(RT_LOG_WARN, NULL, "workflows listener: %s", err.msg);
    return s == RT_OK;
}

/* Drains inotify events; true when any arrived. */
static bool drain_inotify(int fd)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    while (read(fd, buf, sizeof buf) > 0)
        any = true;
    return any;
}

static bool drain_notifies(PGconn *c)
{
    bool any = false;
    if (!c || !PQconsumeInput(c))
        return false;
    PGnotify *nt;
    while ((nt = PQnotifies(c)) != NULL) {
        any = true;
        PQfreemem(nt);
    }
    return any;
}

static void *watch_main(void *arg)
{
    rt_workflow_watch *w = arg;
    bool connected = false, dirty_dir = false;
    int64_t delay = 100, dir_quiet_at = 0;
    while (!atomic_load(&w->stopping)) {
        if (!connected || !rt_store_healthy(w->st)) {
            connected = connect_and_listen(w) && reload(w);
            if (!connected) {
                struct pollfd p = {.fd = w->wake[0], .events = POLLIN};
                poll(&p, 1, (int)delay);
                delay = delay * 2 > 5000 ? 5000 : delay * 2;
                continue;
            }
            delay = 100;
        }
        PGconn *c = rt_store_pg(w->st);
        struct pollfd fds[3] = {{.fd = w->wake[0], .events = POLLIN},
                                {.fd = c ? PQsocket(c) : -1, .events = POLLIN},
                                {.fd = w->inotify_fd, .events = POLLIN}};
        int timeout = dirty_dir ? (int)(dir_quiet_at - rt_mono_ms()) : 5000;
        if (timeout < 0)
            timeout = 0;
        poll(fds, 3, timeout);
        char b[64];
        while (read(w->wake[0], b, sizeof b) > 0)
            ;
        if (w->inotify_fd >= 0 && drain_inotify(w->inotify_fd)) {
            dirty_dir = true;
            dir_quiet_at = rt_mono_ms() + SETTLE_MS;
        }
        bool changed = drain_notifies(c);
        if (atomic_exchange(&w->resync, false) || (dirty_dir && rt_mono_ms() >= dir_quiet_at)) {
            dirty_dir = false;
            sync_dir(w);
            changed = true; /* its NOTIFY comes too; reload now all the same */
            drain_notifies(rt_store_pg(w->st));
        }
        if (changed && !reload(w))
            connected = false;
    }
    rt_store_close(w->st);
    w->st = NULL;
    return NULL;
}

rt_status rt_workflow_watch_start(const rt_config *cfg, rt_workflow_live *live, const char *dir, bool watch,
                                  rt_workflow_change_fn on_change, void *arg, rt_workflow_watch **out,
                                  rt_error *err)
{
    rt_workflow_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir ? dir : ""))) {
        free(w);
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    }
    w->cfg = cfg;
    w->live = live;
    w->watch = watch;
    w->on_change = on_change;
    w->arg = arg;
    w->inotify_fd = -1;
    atomic_init(&w->stopping, false);
    atomic_init(&w->resync, false);
    if (pipe2(w->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        rt_status s = rt_error_set(err, RT_ERR_IO, "workflows listener: pipe: %s", strerror(errno));
        free(w->dir);
        free(w);
        return s;
    }
    if (watch) {
        w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->inotify_fd < 0 ||
            inotify_add_watch(w->inotify_fd, w->dir,
                              IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ATTRIB) < 0) {
            rt_status s = rt_error_set(err, RT_ERR_IO, "--watch %s: inotify: %s", w->dir, strerror(errno));
            rt_workflow_watch_stop(w);
            return s;
        }
        rt_log(RT_LOG_INFO, NULL, "workflows: watching %s", w->dir);
    }
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        rt_workflow_watch_stop(w);
        return rt_error_set(err, RT_ERR_INTERNAL, "cannot start the workflows listener thread");
    }
    w->started = true;
    *out = w;
    return RT_OK;
}

void rt_workflow_watch_resync(rt_workflow_watch *w)
{
    if (!w)
        return;
    atomic_store(&w->resync, true);
    ssize_t n = write(w->wake[1], "r", 1);
    (void)n;
}

void rt_workflow_watch_stop(rt_workflow_watch *w)
{
    if (!w)
        return;
    atomic_store(&w->stopping, true);
    ssize_t n = write(w->wake[1], "s", 1);
    (void)n;
    if (w->started)
        pthread_join(w->thread, NULL);
    if (w->inotify_fd >= 0)
        close(w->inotify_fd);
    close(w->wake[0]);
    close(w->wake[1]);
    rt_store_close(w->st);
    free(w->dir);
    free(w);
}
