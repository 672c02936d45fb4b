/* sql.c — placeholder. */
#include "step.h"
static rt_status validate(json_t *with, rt_error *err) { (void)with; (void)err; return RT_OK; }
static void execute(rt_step_ctx *ctx, json_t *with, rt_step_result *res) { (void)ctx; (void)with; rt_step_fail(res, false, "sql: not implemented"); }
const rt_step_type rt_step_sql = { .name = "sql", .validate = validate, .execute = execute };
