/* api_hooks.c — inbound webhooks (api_hooks.h). */
#include "api_hooks.h"

void rt_api_post_stripe_hook(rt_api_req *r)
{
    rt_api_reply_error(r, 501, "webhooks are not built yet");
}

void rt_api_post_generic_hook(rt_api_req *r)
{
    rt_api_reply_error(r, 501, "webhooks are not built yet");
}
