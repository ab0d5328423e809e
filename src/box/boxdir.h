/* A box's state directory: $FORKBOX_HOME/boxes/ID/, where ID is 12 random
 * hex digits. It holds the box's console log (and, later, its sockets and
 * disk layers). */
#ifndef FB_BOX_BOXDIR_H
#define FB_BOX_BOXDIR_H

#include <stddef.h>

#define FB_BOX_ID_LEN 12

int fb_box_new_id(char id[FB_BOX_ID_LEN + 1]);
/* Creates the directory (and its parents) and writes its path to buf. */
int fb_box_dir_create(const char *id, char *buf, size_t len);
/* Removes the directory and the files in it (no subdirectories yet). */
int fb_box_dir_remove(const char *dir);

#endif
