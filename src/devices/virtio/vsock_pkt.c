/* virtio-vsock packet headers (little-endian on the wire, packed) and
 * slicing a descriptor chain's segments into iovecs for readv/sendmsg, so
 * payloads move between sockets and guest memory without a bounce copy. */
#include "devices/virtio/vsock_priv.h"
#include "util/le.h"

/* Offsets of struct virtio_vsock_hdr's fields. */
enum {
	OFF_SRC_CID = 0, OFF_DST_CID = 8, OFF_SRC_PORT = 16, OFF_DST_PORT = 20,
	OFF_LEN = 24, OFF_TYPE = 28, OFF_OP = 30, OFF_FLAGS = 32,
	OFF_BUF_ALLOC = 36, OFF_FWD_CNT = 40,
};
_Static_assert(OFF_FWD_CNT + 4 == VSOCK_HDR_SIZE, "virtio_vsock_hdr is 44 bytes");

void vsock_hdr_decode(struct vsock_hdr *h, const uint8_t raw[VSOCK_HDR_SIZE])
{
	h->src_cid = fb_le64(raw + OFF_SRC_CID);
	h->dst_cid = fb_le64(raw + OFF_DST_CID);
	h->src_port = fb_le32(raw + OFF_SRC_PORT);
	h->dst_port = fb_le32(raw + OFF_DST_PORT);
	h->len = fb_le32(raw + OFF_LEN);
	h->type = fb_le16(raw + OFF_TYPE);
	h->op = fb_le16(raw + OFF_OP);
	h->flags = fb_le32(raw + OFF_FLAGS);
	h->buf_alloc = fb_le32(raw + OFF_BUF_ALLOC);
	h->fwd_cnt = fb_le32(raw + OFF_FWD_CNT);
}

void vsock_hdr_encode(uint8_t raw[VSOCK_HDR_SIZE], const struct vsock_hdr *h)
{
	fb_put_le64(raw + OFF_SRC_CID, h->src_cid);
	fb_put_le64(raw + OFF_DST_CID, h->dst_cid);
	fb_put_le32(raw + OFF_SRC_PORT, h->src_port);
	fb_put_le32(raw + OFF_DST_PORT, h->dst_port);
	fb_put_le32(raw + OFF_LEN, h->len);
	fb_put_le16(raw + OFF_TYPE, h->type);
	fb_put_le16(raw + OFF_OP, h->op);
	fb_put_le32(raw + OFF_FLAGS, h->flags);
	fb_put_le32(raw + OFF_BUF_ALLOC, h->buf_alloc);
	fb_put_le32(raw + OFF_FWD_CNT, h->fwd_cnt);
}
