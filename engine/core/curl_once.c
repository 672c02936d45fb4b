/* curl_once.c — see curl_once.h. */
#include "curl_once.h"

#include <pthread.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CURLcode init_rc;

static void init(void)
{
    init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

CURLcode rt_curl_init(void)
{
    pthread_once(&once, init);
    return init_rc;
}
