/* Fuzzes the run channel's frame parser (src/box/frames.c), which reads
 * what a hostile guest's PID 1 writes on COM2, a byte at a time. The input
 * is the byte stream. Checked: every frame delivered has a known type and
 * a length within the cap, the bytes delivered are the bytes fed, and once
 * the parser says broken it stays broken with a message. */
#include <string.h>

#include "box/frames.h"
#include "fuzz.h"

struct sink {
	const uint8_t *stream; /* where the current frame started */
	size_t frames;
	size_t pos;            /* bytes fed so far */
	size_t frame_start;
};

static void on_frame(void *opaque, uint8_t type, const uint8_t *payload,
		     uint32_t len)
{
	struct sink *s = opaque;
	static uint8_t copy[FB_FRAME_MAX_PAYLOAD];

	FZ_CHECK(type == FB_FRAME_INIT || type == FB_FRAME_STDOUT ||
		 type == FB_FRAME_STDERR || type == FB_FRAME_EXIT);
	FZ_CHECK(len <= FB_FRAME_MAX_PAYLOAD);
	/* The frame is the bytes just fed: header, then payload. */
	FZ_CHECK(s->pos + 1 - s->frame_start == FB_FRAME_HDR_LEN + len);
	FZ_CHECK(s->stream[s->frame_start] == type);
	if (len) {
		memcpy(copy, payload, len);
		FZ_CHECK(memcmp(copy, s->stream + s->frame_start +
				FB_FRAME_HDR_LEN, len) == 0);
	}
	s->frames++;
	s->frame_start = s->pos + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fb_frame_parser p; /* 4 KiB payload buffer: not on the stack */
	struct sink s = { .stream = data };
	bool ok = true;

	fb_frame_parser_init(&p, on_frame, &s);
	for (s.pos = 0; s.pos < size; s.pos++) {
		bool r = fb_frame_parser_feed(&p, data[s.pos]);

		if (!ok)
			FZ_CHECK(!r);
		if (!r) {
			FZ_CHECK(p.broken && p.error[0]);
			ok = false;
		}
	}
	if (!ok)
		FZ_CHECK(!fb_frame_parser_feed(&p, 'I'));
	return 0;
}
