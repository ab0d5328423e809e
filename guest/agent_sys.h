/* The agent's calls that change the machine it runs on. In the guest
 * (agent_sys.c) they are the real syscalls; a host test links its own
 * versions that record the calls, so testing REINJECT never touches the
 * test machine's hostname, RNG or clock. Each returns 0 or -errno. */
#ifndef FORKBOX_GUEST_AGENT_SYS_H
#define FORKBOX_GUEST_AGENT_SYS_H

#include <stddef.h>
#include <stdint.h>

int fbg_sys_sethostname(const char *name, size_t len);
/* RNDADDENTROPY on /dev/random, crediting 8 bits a byte. */
int fbg_sys_add_entropy(const uint8_t *buf, size_t len);
/* RNDRESEEDCRNG; -ENOTTY or -EINVAL where the kernel lacks it. */
int fbg_sys_reseed_crng(void);
int fbg_sys_set_realtime(uint64_t ns);
/* Stores the box id (atomically) where guest programs can read it. */
int fbg_sys_store_box_id(const char *id, size_t len);

#endif
