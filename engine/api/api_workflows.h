/* api_workflows.h — the registry routes of the HTTP API (docs/api.md "Workflows"): PUT and
 * DELETE /api/v1/workflows/{id}, POST .../pause and .../resume, GET .../versions, and the
 * registry fields GET /api/v1/workflows adds to each workflow. */
#ifndef RT_API_WORKFLOWS_H
#define RT_API_WORKFLOWS_H

#include <jansson.h>

#include "api_routes.h"

void rt_api_put_workflow(rt_api_req *r);
void rt_api_delete_workflow(rt_api_req *r);
void rt_api_post_workflow_pause(rt_api_req *r);
void rt_api_post_workflow_resume(rt_api_req *r);
void rt_api_get_workflow_versions(rt_api_req *r);
void rt_api_get_workflow_proposals(rt_api_req *r);
void rt_api_post_workflow_proposal_decision(rt_api_req *r);
/* Adds {version, source, paused, last_run, in_flight, held} from the registry to each
 * element of workflows (by id). Best effort: without a database the list stays as is. */
void rt_api_workflows_decorate(rt_api_req *r, json_t *workflows);

#endif
