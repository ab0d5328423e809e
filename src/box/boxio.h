/* Talking to a box's agent: exec and copies, over a fresh vsock
 * connection each (so any number can run at once). */
#ifndef FB_BOX_BOXIO_H
#define FB_BOX_BOXIO_H

#include "agent/client.h"

/* For the guest to take a connection and say HELLO: as long as the
 * vsock device waits for a guest's answer (a guest on a loaded host, or
 * in the emulated lab with a dozen others, has taken over 10 s). */
#define FB_BOX_DIAL_TIMEOUT_MS 30000

/* Runs req in the box behind uds; *status is docker style. */
int fb_box_exec(const char *uds, const struct fb_agent_exec_req *req,
		int stdin_fd, int stdout_fd, int stderr_fd, int *status);

/* Copies a host file into the box (written atomically there); a guest
 * path ending in '/' or naming a directory gets the file's base name. */
int fb_box_copy_in(const char *uds, const char *host_path,
		   const char *guest_path);

/* Copies a box's file out, to a temporary name beside host_path, then
 * renamed over it; a host directory gets the file's base name. */
int fb_box_copy_out(const char *uds, const char *guest_path,
		    const char *host_path);

#endif
