/* The control socket of a detached box's VMM process, `control.sock` in
 * the box directory: one request line per connection, one reply line:
 *   pause | resume | snapshot DIR [diff]   ->   ok [detail] | error MESSAGE
 *   fork   ->   ok paused_ms=X layers=N runs=R, with the template's fds
 *                (state, layout, N layers) attached (SCM_RIGHTS)
 * Only the box's owner can reach it (the directory is 0700). */
#ifndef FB_BOX_CONTROL_H
#define FB_BOX_CONTROL_H

#include "box/boxvm.h"

#define FB_BOX_CONTROL_NAME "control.sock"
#define FB_BOX_CONTROL_MAX_LINE 4096

/* Listens on <dir>/control.sock; returns the fd. */
int fb_box_control_listen(const char *dir);

/* Serves control requests until the VM ends (returns 1) or stop_fd
 * becomes readable (returns 0). */
int fb_box_control_loop(struct fb_box_vm *b, int listen_fd, int stop_fd);

/* Client: sends one request to the box in dir and returns its reply line
 * in reply (without "ok "); an "error" reply becomes -EIO with its text. */
int fb_box_control_call(const char *dir, const char *request, char *reply,
			size_t reply_len, int timeout_ms);

/* The same, keeping up to max fds that came with the reply in fds
 * (*nr_fds of them; the caller closes them). */
int fb_box_control_call_fds(const char *dir, const char *request, char *reply,
			    size_t reply_len, int *fds, unsigned max,
			    unsigned *nr_fds, int timeout_ms);

#endif
