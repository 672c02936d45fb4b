/* curl_once.h — libcurl's process-wide initialisation, done once for every user of it
 * (the http and email steps, the OpenTelemetry exporter): curl_global_init must not run
 * twice at the same time from two threads. */
#ifndef RT_CURL_ONCE_H
#define RT_CURL_ONCE_H

#include <curl/curl.h>

/* Initialises libcurl on the first call (from any thread); returns its result, CURLE_OK
 * when libcurl is ready. */
CURLcode rt_curl_init(void);

#endif
