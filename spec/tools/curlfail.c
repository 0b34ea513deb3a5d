/*
 * curlfail.c - an LD_PRELOAD shim for spec/transport_failures_spec.lua: with
 * TRUTO_CURLFAIL=poll (or perform) in the environment, curl_multi_poll (or
 * curl_multi_perform) fails with CURLM_OUT_OF_MEMORY, as libcurl's own can;
 * otherwise both are libcurl's. Built by `make test` into
 * $(BUILD)/curlfail.so; never installed.
 */
#include <curl/curl.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static int failing(const char *name)
{
    const char *v = getenv("TRUTO_CURLFAIL");
    return v && strcmp(v, name) == 0;
}

/* libcurl's own function: loaded by truto/core.so in a local scope, so
 * looked up in libcurl itself when RTLD_NEXT cannot see it. */
static void *real_function(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_NOLOAD);
        f = lib ? dlsym(lib, name) : NULL;
    }
    if (!f)
        abort();
    return f;
}

typedef CURLMcode (*poll_fn)(CURLM *, struct curl_waitfd[], unsigned int, int, int *);
typedef CURLMcode (*perform_fn)(CURLM *, int *);

CURLMcode curl_multi_poll(CURLM *multi, struct curl_waitfd extra[], unsigned int n, int ms,
                          int *numfds)
{
    if (failing("poll"))
        return CURLM_OUT_OF_MEMORY;
    poll_fn real = (poll_fn)real_function("curl_multi_poll");
    return real(multi, extra, n, ms, numfds);
}

CURLMcode curl_multi_perform(CURLM *multi, int *running)
{
    if (failing("perform"))
        return CURLM_OUT_OF_MEMORY;
    perform_fn real = (perform_fn)real_function("curl_multi_perform");
    return real(multi, running);
}
