#include <stdio.h>
#include <string.h>

#include "box/frames.h"
#include "util/le.h"

void fb_frame_parser_init(struct fb_frame_parser *p,
			  void (*on_frame)(void *, uint8_t, const uint8_t *,
					   uint32_t),
			  void *opaque)
{
	memset(p, 0, sizeof(*p));
	p->on_frame = on_frame;
	p->opaque = opaque;
}

static bool known_type(uint8_t t)
{
	return t == FB_FRAME_INIT || t == FB_FRAME_STDOUT ||
	       t == FB_FRAME_STDERR || t == FB_FRAME_EXIT;
}

static void deliver(struct fb_frame_parser *p)
{
	p->on_frame(p->opaque, p->hdr[0], p->payload, p->payload_len);
	p->hdr_got = 0;
	p->payload_got = 0;
	p->payload_len = 0;
}

bool fb_frame_parser_feed(struct fb_frame_parser *p, uint8_t byte)
{
	if (p->broken)
		return false;
	if (p->hdr_got < FB_FRAME_HDR_LEN) {
		p->hdr[p->hdr_got++] = byte;
		if (p->hdr_got == 1 && !known_type(byte)) {
			snprintf(p->error, sizeof(p->error), "guest sent a "
				 "frame of unknown type 0x%02x", byte);
			p->broken = true;
			return false;
		}
		if (p->hdr_got < FB_FRAME_HDR_LEN)
			return true;
		p->payload_len = fb_le32(p->hdr + 1);
		if (p->payload_len > FB_FRAME_MAX_PAYLOAD) {
			snprintf(p->error, sizeof(p->error), "guest sent a "
				 "frame of %u bytes, more than the %u allowed",
				 p->payload_len, FB_FRAME_MAX_PAYLOAD);
			p->broken = true;
			return false;
		}
		if (p->payload_len == 0)
			deliver(p);
		return true;
	}
	p->payload[p->payload_got++] = byte;
	if (p->payload_got == p->payload_len)
		deliver(p);
	return true;
}
