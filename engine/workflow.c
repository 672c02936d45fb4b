/* workflow.c — placeholder until the loader lands. */
#include "workflow.h"
#include <string.h>
rt_status rt_workflow_from_json(json_t *def, const char *file, rt_workflow **out, rt_error *err) { (void)def; (void)file; *out = NULL; return rt_error_set(err, RT_ERR_INTERNAL, "not implemented"); }
rt_status rt_workflow_parse(const char *text, size_t len, const char *file, rt_workflow **out, rt_error *err) { (void)text; (void)len; return rt_workflow_from_json(NULL, file, out, err); }
rt_status rt_workflow_load_file(const char *path, rt_workflow **out, rt_error *err) { return rt_workflow_from_json(NULL, path, out, err); }
void rt_workflow_free(rt_workflow *wf) { (void)wf; }
int rt_workflow_step_index(const rt_workflow *wf, const char *step_id) { for (size_t i = 0; i < wf->n_steps; i++) if (strcmp(wf->steps[i].id, step_id) == 0) return (int)i; return -1; }
rt_status rt_workflow_load_dir(const char *dir, rt_workflow_set **out, rt_workflow_error_fn on_error, void *arg, rt_error *err) { (void)dir; (void)on_error; (void)arg; *out = NULL; return rt_error_set(err, RT_ERR_INTERNAL, "not implemented"); }
void rt_workflow_set_free(rt_workflow_set *set) { (void)set; }
rt_workflow *rt_workflow_set_find(const rt_workflow_set *set, const char *id) { (void)set; (void)id; return NULL; }
bool rt_event_name_matches(const char *pattern, const char *name) { return strcmp(pattern, name) == 0; }
const char *rt_priority_name(rt_priority p) { static const char *n[] = {"critical","high","normal","low"}; return n[p]; }
