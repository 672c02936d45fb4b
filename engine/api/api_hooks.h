/* api_hooks.h — inbound webhooks (DESIGN §8): POST /hooks/stripe verifies Stripe-Signature
 * and stores the payload as the event stripe.<type>; POST /hooks/generic/{name} does the
 * same for any sender that signs with an HMAC header. Public routes: the signature is the
 * authentication. */
#ifndef RT_API_HOOKS_H
#define RT_API_HOOKS_H

#include "api_routes.h"

void rt_api_post_stripe_hook(rt_api_req *r);
void rt_api_post_generic_hook(rt_api_req *r);

#endif
