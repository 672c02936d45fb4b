/* expr.c — placeholder until the evaluator lands. */
#include "expr.h"
#include <string.h>
rt_status rt_expr_check(const char *src, rt_error *err) { (void)src; return rt_error_set(err, RT_ERR_INTERNAL, "not implemented"); }
rt_status rt_expr_eval(const char *src, json_t *ctx, json_t **out, rt_error *err) { (void)src; (void)ctx; *out = NULL; return rt_error_set(err, RT_ERR_INTERNAL, "not implemented"); }
bool rt_expr_truthy(const json_t *v) { return v && !json_is_null(v) && !json_is_false(v); }
rt_status rt_expr_condition(const char *src, json_t *ctx, bool *out, rt_error *err) { (void)src; (void)ctx; *out = false; return rt_error_set(err, RT_ERR_INTERNAL, "not implemented"); }
bool rt_template_present(const char *s) { return strstr(s, "${{") != NULL; }
rt_status rt_template_render(json_t *value, json_t *ctx, json_t **out, rt_error *err) { (void)ctx; (void)err; *out = json_deep_copy(value); return RT_OK; }
rt_status rt_template_check(json_t *value, const char *path_prefix, rt_error *err) { (void)value; (void)path_prefix; (void)err; return RT_OK; }
