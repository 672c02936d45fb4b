/* store_progress.c — the SQL of step progress (store_progress.h). */
#include "store_progress.h"
#include "store_internal.h"

static const char write_sql[] =
    "update ratchet.steps s set progress = x.progress, progress_at = now() "
    "from jsonb_to_recordset($1::jsonb) as x(run_id uuid, step_id text, progress jsonb) "
    "where s.run_id = x.run_id and s.step_id = x.step_id";

rt_status rt_store_progress_write(rt_store *st, json_t *rows, rt_error *err)
{
    rt_status s = rt_store_exec_json(st, "progress_write", write_sql, rows, err);
    return s == RT_OK ? RT_OK : rt_error_prefix(err, "step progress");
}
