#ifndef WAITLIST_CCURL_SHIM_H
#define WAITLIST_CCURL_SHIM_H

#include <curl/curl.h>

/* Typed wrappers over libcurl's variadic calls, which Swift cannot call directly. */

typedef size_t (*waitlist_curl_header_callback)(char *buffer, size_t size, size_t nitems, void *userdata);

static inline CURLcode waitlist_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode waitlist_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode waitlist_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode waitlist_curl_setopt_header_function(CURL *handle, waitlist_curl_header_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, callback);
}

static inline CURLcode waitlist_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode waitlist_curl_getinfo_socket(CURL *handle, CURLINFO info, curl_socket_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

#endif
