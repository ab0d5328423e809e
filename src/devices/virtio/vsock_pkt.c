/* virtio-vsock packet headers (little-endian on the wire, packed) and
 * slicing a descriptor chain's segments into iovecs for readv/sendmsg, so
 * payloads move between sockets and guest memory without a bounce copy. */
#include <endian.h>
#include <string.h>

#include "devices/virtio/vsock_priv.h"

static uint64_t get64(const uint8_t *p)
{
	uint64_t x;

	memcpy(&x, p, sizeof(x));
	return le64toh(x);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t x;

	memcpy(&x, p, sizeof(x));
	return le32toh(x);
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t x;

	memcpy(&x, p, sizeof(x));
	return le16toh(x);
}

static void put64(uint8_t *p, uint64_t x)
{
	x = htole64(x);
	memcpy(p, &x, sizeof(x));
}

static void put32(uint8_t *p, uint32_t x)
{
	x = htole32(x);
	memcpy(p, &x, sizeof(x));
}

static void put16(uint8_t *p, uint16_t x)
{
	x = htole16(x);
	memcpy(p, &x, sizeof(x));
}

/* Offsets of struct virtio_vsock_hdr's fields. */
enum {
	OFF_SRC_CID = 0, OFF_DST_CID = 8, OFF_SRC_PORT = 16, OFF_DST_PORT = 20,
	OFF_LEN = 24, OFF_TYPE = 28, OFF_OP = 30, OFF_FLAGS = 32,
	OFF_BUF_ALLOC = 36, OFF_FWD_CNT = 40,
};
_Static_assert(OFF_FWD_CNT + 4 == VSOCK_HDR_SIZE, "virtio_vsock_hdr is 44 bytes");

void vsock_hdr_decode(struct vsock_hdr *h, const uint8_t raw[VSOCK_HDR_SIZE])
{
	h->src_cid = get64(raw + OFF_SRC_CID);
	h->dst_cid = get64(raw + OFF_DST_CID);
	h->src_port = get32(raw + OFF_SRC_PORT);
	h->dst_port = get32(raw + OFF_DST_PORT);
	h->len = get32(raw + OFF_LEN);
	h->type = get16(raw + OFF_TYPE);
	h->op = get16(raw + OFF_OP);
	h->flags = get32(raw + OFF_FLAGS);
	h->buf_alloc = get32(raw + OFF_BUF_ALLOC);
	h->fwd_cnt = get32(raw + OFF_FWD_CNT);
}

void vsock_hdr_encode(uint8_t raw[VSOCK_HDR_SIZE], const struct vsock_hdr *h)
{
	put64(raw + OFF_SRC_CID, h->src_cid);
	put64(raw + OFF_DST_CID, h->dst_cid);
	put32(raw + OFF_SRC_PORT, h->src_port);
	put32(raw + OFF_DST_PORT, h->dst_port);
	put32(raw + OFF_LEN, h->len);
	put16(raw + OFF_TYPE, h->type);
	put16(raw + OFF_OP, h->op);
	put32(raw + OFF_FLAGS, h->flags);
	put32(raw + OFF_BUF_ALLOC, h->buf_alloc);
	put32(raw + OFF_FWD_CNT, h->fwd_cnt);
}
