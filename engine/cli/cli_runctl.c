/* cli_runctl.c — pause, resume, cancel and replay from the command line (runctl.h does the
 * work; every action is audited as actor "cli:$USER"). */
#include "cli_runctl.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "run_status.h"
#include "runctl.h"
#include "store.h"
#include "util.h"

#define EXIT_USAGE 2
#define MAX_IDS 64

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
    fprintf(stderr, " (see `ratchet help`)\n");
    return EXIT_USAGE;
}

/* The flags each command takes, as " --a --b ". */
static const char *allowed_flags(const char *cmd)
{
    if (!strcmp(cmd, "cancel"))
        return " --workflow --status --entity --error --since --until --dry-run --all --reason --json ";
    if (!strcmp(cmd, "replay"))
        return " --workflow --status --entity --error --since --until --dry-run --all --from --json ";
    return " --json ";
}

static int parse(const char *cmd, rt_config *cfg, int argc, char **argv, int pos, args *a)
{
    static const struct {
        const char *name;
        size_t off;
    } strs[] = {
        {"--workflow", offsetof(args, workflow)}, {"--status", offsetof(args, status)},
        {"--entity", offsetof(args, entity)},     {"--error", offsetof(args, error)},
        {"--since", offsetof(args, since)},       {"--until", offsetof(args, until)},
        {"--from", offsetof(args, from)},         {"--reason", offsetof(args, reason)},
    };
    static const struct {
        const char *name;
        size_t off;
    } bools[] = {{"--dry-run", offsetof(args, dry_run)}, {"--all", offsetof(args, all)}, {"--json", offsetof(args, json)}};
    memset(a, 0, sizeof *a);
    const char *allowed = allowed_flags(cmd);
    for (int i = pos; i < argc; i++) {
        const char *s = argv[i];
        if (s[0] != '-') {
            if (a->n_ids >= MAX_IDS)
                return usage(cmd, "at most %s run ids at a time (use a filter)", "64");
            a->ids[a->n_ids++] = s;
            continue;
        }
        rt_error err;
        rt_status st = rt_config_apply_flag(cfg, argc, argv, &i, &err);
        if (st == RT_OK)
            continue;
        if (st != RT_ERR_NOT_FOUND)
            return usage(cmd, "%s", err.msg);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(s, "="), s);
        char needle[72];
        snprintf(needle, sizeof needle, " %s ", name);
        if (!strstr(allowed, needle))
            return usage(cmd, "unknown option \"%s\"", s);
        bool done = false;
        for (size_t k = 0; k < sizeof bools / sizeof bools[0] && !done; k++) {
            if (strcmp(name, bools[k].name))
                continue;
            if (strchr(s, '='))
                return usage(cmd, "%s takes no value", name);
            *(bool *)((char *)a + bools[k].off) = done = true;
        }
        for (size_t k = 0; k < sizeof strs / sizeof strs[0] && !done; k++) {
            if (strcmp(name, strs[k].name))
                continue;
            const char *v = strchr(s, '=') ? strchr(s, '=') + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v)
                return usage(cmd, "%s needs a value", name);
            *(const char **)((char *)a + strs[k].off) = v;
            done = true;
        }
    }
    return 0;
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
    int rc = parse(cmd, cfg, argc, argv, pos, &a);
    if (rc)
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
