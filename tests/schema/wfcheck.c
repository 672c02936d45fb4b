/* wfcheck.c — runs the C workflow loader on files for tests/schema/check_agreement.py:
 * prints "ok <id> <hash>" per workflow loaded, or the error; exits 0 when all loaded.
 * `--step-types` lists the registered step types; `--capabilities` lists the checks that
 * are live (cron, tz, expr), so corpus files that need one are skipped until it lands. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cron.h"
#include "expr.h"
#include "step.h"
#include "workflow.h"

/* A module still at its placeholder answers RT_ERR_INTERNAL to everything. */
static void print_capabilities(void)
{
    rt_error err;
    rt_cron *c = NULL;
    if (rt_cron_parse("* * * * *", &c, &err) != RT_ERR_INTERNAL)
        printf("cron\n");
    rt_cron_free(c);
    rt_tz *tz = NULL;
    if (rt_tz_load("UTC", &tz, &err) != RT_ERR_INTERNAL)
        printf("tz\n");
    rt_tz_free(tz);
    if (rt_expr_check("1", &err) != RT_ERR_INTERNAL)
        printf("expr\n");
}

static void print_error(void *arg, const char *file, const rt_error *err)
{
    (void)file;
    int *bad = arg;
    *bad = 1;
    printf("error %s\n", err->msg);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: wfcheck FILE|DIR...   (or: wfcheck --step-types | --capabilities)\n");
        return 2;
    }
    if (strcmp(argv[1], "--step-types") == 0) {
        for (const rt_step_type *const *t = rt_step_types(); *t; t++)
            printf("%s\n", (*t)->name);
        return 0;
    }
    if (strcmp(argv[1], "--capabilities") == 0) {
        print_capabilities();
        return 0;
    }
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            /* a directory: the same path as `ratchet serve` (sorted, duplicate ids) */
            rt_workflow_set *set;
            rt_error err;
            if (rt_workflow_load_dir(argv[i], &set, print_error, &bad, &err) != RT_OK) {
                printf("error %s\n", err.msg);
                bad = 1;
                continue;
            }
            for (size_t k = 0; k < set->n; k++)
                printf("ok %s %s\n", set->items[k]->id, set->items[k]->hash);
            rt_workflow_set_free(set);
            continue;
        }
        rt_workflow *wf;
        rt_error err;
        if (rt_workflow_load_file(argv[i], &wf, &err) != RT_OK) {
            printf("error %s\n", err.msg);
            bad = 1;
            continue;
        }
        printf("ok %s %s\n", wf->id, wf->hash);
        rt_workflow_free(wf);
    }
    return bad;
}
