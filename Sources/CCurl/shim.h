#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call. These name the
// argument type of each use; they add nothing else.
static inline CURLcode capstan_curl_set_long(CURL *curl, CURLoption option, long value) {
  return curl_easy_setopt(curl, option, value);
}
static inline CURLcode capstan_curl_set_string(CURL *curl, CURLoption option, const char *value) {
  return curl_easy_setopt(curl, option, value);
}
static inline CURLcode capstan_curl_set_pointer(CURL *curl, CURLoption option, void *value) {
  return curl_easy_setopt(curl, option, value);
}
static inline CURLcode capstan_curl_set_write_function(CURL *curl, size_t (*function)(char *, size_t, size_t, void *)) {
  return curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, function);
}
static inline CURLcode capstan_curl_set_header_function(CURL *curl, size_t (*function)(char *, size_t, size_t, void *)) {
  return curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, function);
}
static inline CURLcode capstan_curl_response_code(CURL *curl, long *code) {
  return curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, code);
}
static inline CURLcode capstan_curl_set_xferinfo_function(CURL *curl, int (*function)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t)) {
  return curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, function);
}
