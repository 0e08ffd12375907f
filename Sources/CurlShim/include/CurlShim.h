#ifndef PAYBRIDGE_CURL_SHIM_H
#define PAYBRIDGE_CURL_SHIM_H

#include <curl/curl.h>

// Swift cannot call C variadic functions such as curl_easy_setopt; these
// one-line wrappers give each argument type a non-variadic entry point.

CURLcode cshim_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode cshim_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode cshim_easy_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode cshim_easy_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode cshim_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode cshim_easy_setopt_write_callback(CURL *handle, CURLoption option, curl_write_callback callback);

CURLcode cshim_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode cshim_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value);
CURLcode cshim_easy_getinfo_double(CURL *handle, CURLINFO info, double *value);

CURLMcode cshim_multi_setopt_long(CURLM *handle, CURLMoption option, long value);

/// The result code of a finished transfer (CURLMsg keeps it in a union).
CURLcode cshim_msg_result(const CURLMsg *message);

#endif
