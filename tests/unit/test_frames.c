/* The host's parser of the frames the guest sends on COM2: whole frames
 * out of any split of the byte stream, and a hostile guest's frames (too
 * long, unknown type) ending the parse for good. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "box/frames.h"
#include "util/le.h"

#define MAX_SEEN 16

struct seen {
	int n;
	uint8_t type[MAX_SEEN];
	uint32_t len[MAX_SEEN];
	uint8_t *payload[MAX_SEEN];
};

static void on_frame(void *opaque, uint8_t type, const uint8_t *payload,
		     uint32_t len)
{
	struct seen *s = opaque;

	assert_true(s->n < MAX_SEEN);
	s->type[s->n] = type;
	s->len[s->n] = len;
	s->payload[s->n] = malloc(len ? len : 1);
	assert_non_null(s->payload[s->n]);
	if (len)
		memcpy(s->payload[s->n], payload, len);
	s->n++;
}

static void seen_free(struct seen *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->payload[i]);
	memset(s, 0, sizeof(*s));
}

/* Appends a frame to buf at *off. */
static void put_frame(uint8_t *buf, size_t *off, uint8_t type,
		      const void *payload, uint32_t len)
{
	buf[(*off)++] = type;
	fb_put_le32(buf + *off, len);
	*off += 4;
	memcpy(buf + *off, payload, len);
	*off += len;
}

static void feed_all(struct fb_frame_parser *p, const uint8_t *buf,
		     size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!fb_frame_parser_feed(p, buf[i]))
			fail_msg("parser broke at byte %zu: %s", i, p->error);
}

static struct fb_frame_parser *new_parser(struct seen *s)
{
	struct fb_frame_parser *p = malloc(sizeof(*p));

	assert_non_null(p);
	memset(s, 0, sizeof(*s));
	fb_frame_parser_init(p, on_frame, s);
	return p;
}

/* The run of frames a guest sends; fed one byte at a time, each frame
 * arrives whole, once, and only when its last byte is in. */
static void test_byte_by_byte(void **state)
{
	static const uint8_t exit3[4] = { 3, 0, 0, 0 };
	uint8_t buf[256];
	size_t len = 0, ends[4];
	struct seen s;
	struct fb_frame_parser *p = new_parser(&s);

	put_frame(buf, &len, FB_FRAME_INIT, "", 0);
	ends[0] = len;
	put_frame(buf, &len, FB_FRAME_STDOUT, "hi\n", 3);
	ends[1] = len;
	put_frame(buf, &len, FB_FRAME_STDERR, "err\n", 4);
	ends[2] = len;
	put_frame(buf, &len, FB_FRAME_EXIT, exit3, 4);
	ends[3] = len;

	for (size_t i = 0, f = 0; i < len; i++) {
		assert_true(fb_frame_parser_feed(p, buf[i]));
		if (f < 4 && i + 1 == ends[f])
			f++;
		assert_int_equal(s.n, f);
	}
	assert_int_equal(s.n, 4);
	assert_int_equal(s.type[0], 'I');
	assert_int_equal(s.len[0], 0);
	assert_int_equal(s.type[1], 'O');
	assert_int_equal(s.len[1], 3);
	assert_memory_equal(s.payload[1], "hi\n", 3);
	assert_int_equal(s.type[2], 'E');
	assert_int_equal(s.len[2], 4);
	assert_memory_equal(s.payload[2], "err\n", 4);
	assert_int_equal(s.type[3], 'X');
	assert_int_equal(s.len[3], 4);
	assert_memory_equal(s.payload[3], exit3, 4);
	assert_false(p->broken);
	assert_string_equal(p->error, "");
	seen_free(&s);
	free(p);
}

/* A payload whose bytes look like frame headers is still just payload. */
static void test_payload_is_opaque(void **state)
{
	uint8_t payload[11], buf[64];
	size_t len = 0;
	struct seen s;
	struct fb_frame_parser *p = new_parser(&s);

	put_frame(payload, &len, FB_FRAME_EXIT, "\xff\xff\xff\xff\xff\xff",
		  6);
	len = 0;
	put_frame(buf, &len, FB_FRAME_STDOUT, payload, sizeof(payload));
	put_frame(buf, &len, FB_FRAME_STDOUT, "z", 1);
	feed_all(p, buf, len);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.len[0], sizeof(payload));
	assert_memory_equal(s.payload[0], payload, sizeof(payload));
	assert_memory_equal(s.payload[1], "z", 1);
	seen_free(&s);
	free(p);
}

static void test_max_payload(void **state)
{
	size_t len = 0, total = 2 * (FB_FRAME_HDR_LEN + FB_FRAME_MAX_PAYLOAD);
	uint8_t *buf = malloc(total), *big = malloc(FB_FRAME_MAX_PAYLOAD);
	struct seen s;
	struct fb_frame_parser *p = new_parser(&s);

	assert_non_null(buf);
	assert_non_null(big);
	for (uint32_t i = 0; i < FB_FRAME_MAX_PAYLOAD; i++)
		big[i] = (uint8_t)(i * 31 + 7);
	put_frame(buf, &len, FB_FRAME_STDOUT, big, FB_FRAME_MAX_PAYLOAD);
	put_frame(buf, &len, FB_FRAME_STDERR, big, FB_FRAME_MAX_PAYLOAD);
	assert_int_equal(len, total);
	feed_all(p, buf, len);
	assert_int_equal(s.n, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(s.len[i], FB_FRAME_MAX_PAYLOAD);
		assert_memory_equal(s.payload[i], big, FB_FRAME_MAX_PAYLOAD);
	}
	assert_int_equal(s.type[0], 'O');
	assert_int_equal(s.type[1], 'E');
	seen_free(&s);
	free(p);
	free(buf);
	free(big);
}

static void test_zero_length(void **state)
{
	uint8_t buf[64];
	size_t len = 0;
	struct seen s;
	struct fb_frame_parser *p = new_parser(&s);

	put_frame(buf, &len, FB_FRAME_STDOUT, "", 0);
	put_frame(buf, &len, FB_FRAME_STDERR, "", 0);
	put_frame(buf, &len, FB_FRAME_INIT, "", 0);
	put_frame(buf, &len, FB_FRAME_STDOUT, "ab", 2);
	put_frame(buf, &len, FB_FRAME_STDOUT, "", 0);
	/* Each empty frame arrives on its fifth byte. */
	for (size_t i = 0; i < 5; i++) {
		assert_true(fb_frame_parser_feed(p, buf[i]));
		assert_int_equal(s.n, i == 4);
	}
	feed_all(p, buf + 5, len - 5);
	assert_int_equal(s.n, 5);
	assert_int_equal(s.type[0], 'O');
	assert_int_equal(s.len[0], 0);
	assert_int_equal(s.type[1], 'E');
	assert_int_equal(s.len[1], 0);
	assert_int_equal(s.type[2], 'I');
	assert_int_equal(s.len[2], 0);
	assert_int_equal(s.len[3], 2);
	assert_memory_equal(s.payload[3], "ab", 2);
	assert_int_equal(s.len[4], 0);
	seen_free(&s);
	free(p);
}

/* Feeds a header claiming len bytes; the parser must break on its last
 * byte, deliver nothing and say why. */
static void expect_too_long(uint32_t len, const char *digits)
{
	uint8_t buf[16];
	size_t n = 0;
	struct seen s;
	struct fb_frame_parser *p = new_parser(&s);

	/* A good frame first: breaking later must not undo it. */
	put_frame(buf, &n, FB_FRAME_STDOUT, "ok", 2);
	feed_all(p, buf, n);
	assert_int_equal(s.n, 1);

	assert_true(fb_frame_parser_feed(p, FB_FRAME_STDOUT));
	assert_true(fb_frame_parser_feed(p, (uint8_t)len));
	assert_true(fb_frame_parser_feed(p, (uint8_t)(len >> 8)));
	assert_true(fb_frame_parser_feed(p, (uint8_t)(len >> 16)));
	assert_false(fb_frame_parser_feed(p, (uint8_t)(len >> 24)));
	assert_true(p->broken);
	if (!strstr(p->error, digits))
		fail_msg("error \"%s\" lacks \"%s\"", p->error, digits);
	assert_non_null(strstr(p->error, "4096"));

	/* Broken for good: nothing more is parsed, even good frames. */
	n = 0;
	put_frame(buf, &n, FB_FRAME_STDOUT, "hi", 2);
	for (size_t i = 0; i < n; i++)
		assert_false(fb_frame_parser_feed(p, buf[i]));
	for (int i = 0; i < 10000; i++)
		assert_false(fb_frame_parser_feed(p, 0));
	assert_int_equal(s.n, 1);
	seen_free(&s);
	free(p);
}

static void test_too_long(void **state)
{
	expect_too_long(FB_FRAME_MAX_PAYLOAD + 1, "4097");
}

static void test_length_all_ones(void **state)
{
	/* What the tiny guest's 'x' mode sends. */
	expect_too_long(0xffffffffu, "4294967295");
}

static void test_length_high_byte(void **state)
{
	/* 0x01000000: only the top length byte is set. */
	expect_too_long(0x01000000u, "16777216");
}

static void test_unknown_type(void **state)
{
	static const uint8_t bad[] = { 0, 'o', 'i', 'x', 0xff, 'A', '\n' };

	for (size_t k = 0; k < sizeof(bad); k++) {
		struct seen s;
		struct fb_frame_parser *p = new_parser(&s);
		char hex[8];

		assert_false(fb_frame_parser_feed(p, bad[k]));
		assert_true(p->broken);
		snprintf(hex, sizeof(hex), "0x%02x", bad[k]);
		if (!strstr(p->error, hex))
			fail_msg("error \"%s\" lacks %s", p->error, hex);
		assert_false(fb_frame_parser_feed(p, FB_FRAME_INIT));
		for (int i = 0; i < 4; i++)
			assert_false(fb_frame_parser_feed(p, 0));
		assert_int_equal(s.n, 0);
		free(p);
	}
}

/* An unknown type after good frames: the type byte of the next frame. */
static void test_unknown_type_after_frames(void **state)
{
	uint8_t buf[32];
	size_t n = 0;
	struct seen s;
	struct fb_frame_parser *p = new_parser(&s);

	put_frame(buf, &n, FB_FRAME_STDOUT, "abc", 3);
	put_frame(buf, &n, FB_FRAME_INIT, "", 0);
	feed_all(p, buf, n);
	assert_int_equal(s.n, 2);
	assert_false(fb_frame_parser_feed(p, 'Q'));
	assert_non_null(strstr(p->error, "unknown type"));
	assert_false(fb_frame_parser_feed(p, FB_FRAME_EXIT));
	assert_int_equal(s.n, 2);
	seen_free(&s);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_payload_is_opaque),
		cmocka_unit_test(test_max_payload),
		cmocka_unit_test(test_zero_length),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_length_all_ones),
		cmocka_unit_test(test_length_high_byte),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_unknown_type_after_frames),
	};

	return cmocka_run_group_tests_name("frames", tests, NULL, NULL);
}
