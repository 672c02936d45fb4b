/* cli_runctl.c — pause, resume, cancel and replay from the command line (runctl.h does the
 * work; every action is audited as actor "cli:$USER"). */
#include "cli_runctl.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "audit.h"
#include "run_status.h"
#include "runctl.h"
#include "store.h"
#include "util.h"

#define EXIT_USAGE 2
#define MAX_IDS RT_ARGS_MAX_POS

typedef struct args {
    const char *ids[MAX_IDS];
    int n_ids;
    const char *workflow, *status, *entity, *error, *since, *until, *from, *reason;
    bool dry_run, all, json;
} args;

static int usage(const char *cmd, const char *msg, const char *arg)
{
    fprintf(stderr, "ratchet %s: ", cmd);
    fprintf(stderr, msg, arg);
    fprintf(stderr, "; see ratchet %s --help\n", cmd);
    return EXIT_USAGE;
}

/* The options of the four commands, one table each (args.h). */
#define O_FILTER                                                                                   \
    {"--workflow", "W", "runs of this workflow"}, {"--status", "S", "runs in this status"},           \
        {"--entity", "E", "runs of this entity_id"},                                                  \
        {"--error", "TEXT", "runs whose error contains TEXT (any case)"},                             \
        {"--since", "T", "runs created since T (RFC 3339, or a duration: 1h = an hour ago)"},         \
        {"--until", "T", "runs created before T"},                                                    \
        {"--dry-run", NULL, "count and list what would be acted on; change nothing"},                 \
        {"--all", NULL, "act on every run (a filter with no criterion is refused otherwise)"}
static const rt_arg_opt cancel_opts[] = {O_FILTER, {"--reason", "TEXT", "why, in each run's error and audit record"},
                                         {"--json", NULL, "print JSON"}, {NULL, NULL, NULL}};
static const rt_arg_opt replay_opts[] = {O_FILTER, {"--from", "STEP", "reuse the memoized outputs of the steps before STEP"},
                                         {"--json", NULL, "print JSON"}, {NULL, NULL, NULL}};
static const rt_arg_opt pause_opts[] = {{"--json", NULL, "print JSON"}, {NULL, NULL, NULL}};
static const rt_arg_cmd runctl_cmds[] = {
    {"ratchet cancel", "[RUN...]", MAX_IDS, "stop runs (by id, or every run a filter matches)", cancel_opts, true},
    {"ratchet replay", "[RUN]", MAX_IDS, "a new run of the same pinned definition and event (by id, or by filter)",
     replay_opts, true},
    {"ratchet pause", "RUN...", MAX_IDS, "a paused run starts no new step (a running one finishes)", pause_opts, true},
    {"ratchet resume", "RUN...", MAX_IDS, "a paused run goes on", pause_opts, true},
};

/* Returns true when the command goes on; false with *rc the exit status (0 after --help). */
static bool parse(const char *cmd, rt_config *cfg, int argc, char **argv, int pos, args *a, int *rc)
{
    const rt_arg_cmd *table = &runctl_cmds[0];
    for (size_t i = 0; i < sizeof runctl_cmds / sizeof runctl_cmds[0]; i++)
        if (!strcmp(runctl_cmds[i].name + strlen("ratchet "), cmd))
            table = &runctl_cmds[i];
    rt_args r;
    if (!rt_args_take(table, cfg, argc, argv, pos, &r, rc))
        return false;
    memset(a, 0, sizeof *a);
    for (int i = 0; i < r.n_pos; i++)
        a->ids[a->n_ids++] = r.pos[i];
    bool filters = table->opts != pause_opts;
    a->workflow = filters ? rt_args_value(&r, "--workflow") : NULL;
    a->status = filters ? rt_args_value(&r, "--status") : NULL;
    a->entity = filters ? rt_args_value(&r, "--entity") : NULL;
    a->error = filters ? rt_args_value(&r, "--error") : NULL;
    a->since = filters ? rt_args_value(&r, "--since") : NULL;
    a->until = filters ? rt_args_value(&r, "--until") : NULL;
    a->dry_run = filters && rt_args_given(&r, "--dry-run");
    a->all = filters && rt_args_given(&r, "--all");
    a->reason = table->opts == cancel_opts ? rt_args_value(&r, "--reason") : NULL;
    a->from = table->opts == replay_opts ? rt_args_value(&r, "--from") : NULL;
    a->json = rt_args_given(&r, "--json");
    return true;
}

/* --since/--until: an RFC 3339 time, or a duration meaning that long ago ("1h"). */
static bool parse_when(const char *s, int64_t *ms)
{
    rt_error err;
    int64_t d;
    if (rt_duration_parse(s, &d, &err) == RT_OK) {
        *ms = rt_now_ms() - d;
        return true;
    }
    return rt_time_parse(s, ms, &err) == RT_OK;
}

static bool has_filter(const args *a)
{
    return a->workflow || a->status || a->entity || a->error || a->since || a->until;
}

static void print_json(json_t *o)
{
    char *t = json_dumps(o, JSON_INDENT(2));
    printf("%s\n", t ? t : "{}");
    free(t);
}

static int bulk(const char *cmd, rt_store *st, const args *a, const char *actor)
{
    rt_bulk b = {.action = !strcmp(cmd, "cancel") ? RT_BULK_CANCEL : RT_BULK_REPLAY,
                 .from_step = a->from,
                 .reason = a->reason,
                 .dry_run = a->dry_run,
                 .actor = actor,
                 .via = "cli",
                 .filter = {.workflow = a->workflow, .status = a->status, .entity_id = a->entity,
                            .error_contains = a->error}};
    rt_run_status rs;
    if (a->status && !rt_run_status_parse(a->status, &rs))
        return usage(cmd, "--status: unknown run status (known: %s)", rt_run_status_list());
    if (a->since && !parse_when(a->since, &b.filter.since_ms))
        return usage(cmd, "--since %s: expected a duration like 1h or an RFC 3339 time", a->since);
    if (a->until && !parse_when(a->until, &b.filter.until_ms))
        return usage(cmd, "--until %s: expected a duration like 1h or an RFC 3339 time", a->until);
    rt_error err;
    rt_status s = rt_runs_bulk(st, &b, &err);
    if (s != RT_OK) {
        rt_bulk_clear(&b);
        fprintf(stderr, "ratchet %s: %s\n", cmd, err.msg);
        return 1;
    }
    if (a->json) {
        json_t *o = rt_bulk_json(&b);
        print_json(o);
        json_decref(o);
    } else {
        size_t i;
        json_t *id;
        json_array_foreach(b.run_ids, i, id) {
            json_t *nid = json_array_get(b.replay_ids, i);
            printf("%s%s%s\n", json_string_value(id), nid ? " " : "", nid ? json_string_value(nid) : "");
        }
        fprintf(stderr, "%lld run(s) matched, %lld %s%s, %lld skipped\n", (long long)b.matched, (long long)b.acted,
                b.dry_run ? "would be " : "", b.action == RT_BULK_CANCEL ? "cancelled" : "replayed",
                (long long)b.skipped);
        json_t *e;
        json_array_foreach(b.errors, i, e)
            fprintf(stderr, "  %s: %s\n", json_string_value(json_object_get(e, "id")),
                    json_string_value(json_object_get(e, "error")));
    }
    rt_bulk_clear(&b);
    return 0;
}

static int one_by_one(const char *cmd, rt_store *st, const args *a, const char *actor)
{
    int rc = 0;
    json_t *out = json_array();
    char why[200];
    snprintf(why, sizeof why, "cancelled by %s (ratchet cancel)%s%.120s", actor, a->reason ? ": " : "",
             a->reason ? a->reason : "");
    for (int i = 0; i < a->n_ids; i++) {
        const char *id = a->ids[i];
        rt_error err;
        rt_status s;
        char status[24] = "", new_id[37] = "";
        json_t *details = json_pack("{s:s}", "via", "cli");
        if (!rt_uuid_valid(id)) {
            s = rt_error_set(&err, RT_ERR_NOT_FOUND, "\"%.64s\" is not a run id (expected a UUID)", id);
        } else if (!strcmp(cmd, "pause") || !strcmp(cmd, "resume")) {
            s = rt_run_pause(st, id, !strcmp(cmd, "pause"), actor, details, status, &err);
        } else if (!strcmp(cmd, "cancel")) {
            bool cancelled = false;
            s = rt_run_cancel(st, id, why, actor, details, &cancelled, &err);
            json_t *run = NULL;
            if (s == RT_OK && (s = rt_store_get_run(st, id, false, &run, &err)) == RT_OK)
                snprintf(status, sizeof status, "%s", json_string_value(json_object_get(run, "status")));
            json_decref(run);
        } else {
            if (a->from)
                json_object_set_new(details, "from", json_string(a->from));
            json_object_set_new(details, "replay_of", json_string(id));
            s = rt_run_replay(st, id, a->from, "--from", actor, details, new_id, &err);
        }
        json_decref(details);
        if (s != RT_OK) {
            fprintf(stderr, "ratchet %s: %s\n", cmd, err.msg);
            rc = s == RT_ERR_INVALID ? EXIT_USAGE : 1;
            continue;
        }
        if (new_id[0]) {
            json_array_append_new(out, json_pack("{s:s, s:s}", "id", new_id, "replay_of", id));
            if (!a->json) {
                printf("%s\n", new_id);
                fprintf(stderr, "run %s replays %s%s%s\n", new_id, id, a->from ? " from step " : "",
                        a->from ? a->from : "");
            }
        } else {
            json_array_append_new(out, json_pack("{s:s, s:s}", "id", id, "status", status));
            if (!a->json)
                printf("%s %s\n", id, status);
        }
    }
    if (a->json)
        print_json(out);
    json_decref(out);
    return rc;
}

int rt_cli_runctl(const char *cmd, rt_config *cfg, int argc, char **argv, int pos)
{
    args a;
    int rc = 0;
    if (!parse(cmd, cfg, argc, argv, pos, &a, &rc))
        return rc;
    bool bulk_form = has_filter(&a) || a.all || a.dry_run;
    if (a.n_ids > 0 && bulk_form)
        return usage(cmd, "give run ids or a filter (--workflow, --status, ...), not both%s", "");
    if (a.n_ids == 0 && !bulk_form)
        return usage(cmd, "expected run ids%s", !strcmp(cmd, "cancel") || !strcmp(cmd, "replay")
                                                     ? ", or a filter: --workflow W, --status S, --since D, --until D, "
                                                       "--entity E, --error TEXT (--all for every run)"
                                                     : "");
    if (bulk_form && !has_filter(&a) && !a.all)
        return usage(cmd, "name at least one of --workflow, --status, --since, --until, --entity, --error "
                          "(or --all to act on every run)%s", "");
    if (!strcmp(cmd, "replay") && a.n_ids > 1)
        return usage(cmd, "replay takes one run id (or a filter)%s", "");
    rt_error err;
    if (rt_config_apply_logging(cfg, &err) != RT_OK || rt_config_require_database(cfg, &err) != RT_OK)
        return usage(cmd, "%s", err.msg);
    rt_store *st;
    if (rt_store_open(cfg->database_url, &st, &err) != RT_OK) {
        fprintf(stderr, "ratchet %s: %s\n", cmd, err.msg);
        return 1;
    }
    char actor[96];
    rt_audit_cli_actor(actor, sizeof actor);
    rc = a.n_ids > 0 ? one_by_one(cmd, st, &a, actor) : bulk(cmd, st, &a, actor);
    rt_store_close(st);
    return rc;
}
