/* curl_once.c — see curl_once.h. */
#include "curl_once.h"

#include <pthread.h>
#include <strings.h>

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

rt_status rt_curl_check_url(const char *url, const char *what, const char *shape, const char *a, const char *b,
                            bool *second, rt_error *err)
{
    CURLU *u = curl_url();
    if (!u)
        return rt_error_set(err, RT_ERR_NOMEM, "%s: out of memory", what);
    char *scheme = NULL, *host = NULL;
    rt_status st = RT_OK;
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK)
        st = rt_error_set(err, RT_ERR_INVALID, "%s \"url\" is not %s", what, shape);
    else if (strcasecmp(scheme, a) != 0 && strcasecmp(scheme, b) != 0)
        st = rt_error_set(err, RT_ERR_INVALID, "%s \"url\" must use %s or %s, not %s", what, a, b, scheme);
    else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
        st = rt_error_set(err, RT_ERR_INVALID, "%s \"url\" has no host", what);
    else if (second)
        *second = strcasecmp(scheme, b) == 0;
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return st;
}
