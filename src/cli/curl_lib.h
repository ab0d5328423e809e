/* libcurl, loaded when the CLI first talks to forkboxd. Linked in, it and
 * the libraries it pulls in (TLS, HTTP/2, LDAP...) were loaded and
 * relocated by every forkbox command: 4 ms more a command natively, and
 * a few hundred ms more in the lab, on exec and every other command that
 * never talks to the daemon. */
#ifndef FB_CLI_CURL_LIB_H
#define FB_CLI_CURL_LIB_H

#include <curl/curl.h>

struct fb_curl {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
	CURLcode (*easy_perform)(CURL *c);
	CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *c);
	const char *(*easy_strerror)(CURLcode rc);
	struct curl_slist *(*slist_append)(struct curl_slist *l,
					   const char *s);
	void (*slist_free_all)(struct curl_slist *l);
};

/* The library, loaded and initialised once; NULL (message in
 * fb_last_error()) when it cannot be. */
const struct fb_curl *fb_curl(void);

#endif
