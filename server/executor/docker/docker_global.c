/* Library set-up for main; see docker_global.h. */
#include "server/executor/docker/docker_global.h"

#include <curl/curl.h>

int px_docker_global_init(px_error *err) {
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
        return px_error_set(err, PX_E_INTERNAL, "curl_global_init: %s", curl_easy_strerror(rc));
    return 0;
}

void px_docker_global_cleanup(void) {
    curl_global_cleanup();
}
