/* The host side of the run channel (include/forkbox/guest_proto.h): a
 * byte-at-a-time parser of the frames the guest's PID 1 sends on COM2.
 * The guest is hostile: a frame larger than the protocol allows or of an
 * unknown type ends the parse with an error; nothing is trusted. */
#ifndef FB_BOX_FRAMES_H
#define FB_BOX_FRAMES_H

#include <stdbool.h>
#include <stdint.h>

#include "forkbox/guest_proto.h"

struct fb_frame_parser {
	uint8_t hdr[FB_FRAME_HDR_LEN];
	unsigned hdr_got;
	uint32_t payload_len;
	uint32_t payload_got;
	uint8_t payload[FB_FRAME_MAX_PAYLOAD];
	bool broken;
	char error[128];
	/* Called for each whole frame. */
	void (*on_frame)(void *opaque, uint8_t type, const uint8_t *payload,
			 uint32_t len);
	void *opaque;
};

void fb_frame_parser_init(struct fb_frame_parser *p,
			  void (*on_frame)(void *, uint8_t, const uint8_t *,
					   uint32_t),
			  void *opaque);

/* Feeds one byte; returns false once the stream is broken. */
bool fb_frame_parser_feed(struct fb_frame_parser *p, uint8_t byte);

#endif
