# forkbox: `make` builds build/forkbox, the guest's PID 1 and the initramfs.
# `make demo` and `make test` also run `make setup` first (Debian packages and
# the guest kernel), so a fresh Debian 12 machine needs nothing else.

B        ?= build
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter
CPPFLAGS := -Iinclude -Isrc -D_GNU_SOURCE
ALLCFLAGS = -std=gnu11 $(WARN) $(CFLAGS) $(SAN) -MMD -MP
# libarchive is not linked: image import loads it on first use
# (src/image/archive_lib.h says why), hence -ldl.
LDLIBS   := -lpthread -ldl -lseccomp -lz -ljansson -llz4

FORKBOX_HOME ?= $(HOME)/.local/share/forkbox
KERNEL_DIR ?= $(FORKBOX_HOME)/kernels/default
VMLINUX := $(if $(wildcard $(KERNEL_DIR)/vmlinuz),$(KERNEL_DIR)/vmlinux)

LIB_SRCS := $(wildcard src/vmm/*.c src/arch/x86/*.c src/devices/*.c src/devices/virtio/*.c src/agent/*.c \
                       src/image/*.c src/disk/*.c src/box/*.c src/jail/*.c src/util/*.c src/snapshot/*.c src/host/*.c)
CLI_SRCS := $(wildcard src/cli/*.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)

LIB_OBJS := $(LIB_SRCS:%.c=$(B)/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(B)/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)

all: $(B)/forkbox $(B)/forkboxd $(B)/forkbox-init $(B)/initramfs.cpio $(B)/tests/tiny-guest.bin \
     $(B)/tests/tiny-pvh.elf $(B)/lab-init

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) -c -o $@ $<

$(B)/libforkbox.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

# libcurl is the CLI's alone (its client of forkboxd), loaded by dlopen when
# it first talks to the daemon (src/cli/curl_lib.h says why).
$(B)/forkbox: $(CLI_OBJS) $(B)/libforkbox.a
	$(CC) $(ALLCFLAGS) -o $@ $^ $(LDLIBS)

# forkboxd: the daemon (src/daemon/), over the same library.
DAEMON_SRCS := $(wildcard src/daemon/*.c)
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(B)/%.o)
$(B)/forkboxd: $(DAEMON_OBJS) $(B)/libforkbox.a
	$(CC) $(ALLCFLAGS) -o $@ $^ -lmicrohttpd $(LDLIBS)

# The guest's PID 1 (with the vsock agent) is static: the initramfs has no
# libc of its own. Never sanitized: it runs in the guest, not in the VMM.
GUEST_SRCS := $(wildcard guest/*.c)
$(B)/forkbox-init: $(GUEST_SRCS) $(wildcard guest/*.h) include/forkbox/guest_proto.h \
                   include/forkbox/agent_proto.h src/util/le.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=gnu11 $(WARN) -Os -static -o $@ $(GUEST_SRCS)

$(B)/lab-init: lab/lab-init.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=gnu11 $(WARN) -Os -static -o $@ $<

BUSYBOX ?= /bin/busybox
# The guest kernel unpacked once (`forkbox kernel extract`) instead of in
# every boot: forkbox boots it through its PVH entry (src/arch/x86/pvh.c),
# and the bzImage where there is none. Checked (an ELF with a PVH note)
# before it is written; written to a temporary name, fsynced, renamed.
# `make vmlinux` only, not part of `all`: it saves the guest's
# self-decompression (about 0.7 s of a lab boot, docs/BENCHMARKS.md), but
# full runs of the suite on it had failures the bzImage has not had (a
# triple fault on vCPU 1; execs whose connection the agent dropped).
# (Order-only on forkbox: a rebuilt CLI does not unpack the kernel again.)
$(KERNEL_DIR)/vmlinux: $(KERNEL_DIR)/vmlinuz | $(B)/forkbox
	$(B)/forkbox kernel extract --kernel $< -o $@
vmlinux: $(VMLINUX)

# The guest kernel's modules that the guest loads, in dependency order
# (scripts/setup unpacks the kernel under $(FORKBOX_HOME)/kernels/).
KMOD_DIR ?= $(FORKBOX_HOME)/kernels/default/modules/kernel
KMODS := drivers/virtio/virtio_ring.ko drivers/virtio/virtio.ko \
	 drivers/virtio/virtio_mmio.ko drivers/virtio/virtio_balloon.ko \
	 drivers/char/hw_random/virtio-rng.ko \
	 drivers/block/virtio_blk.ko \
	 net/vmw_vsock/vsock.ko \
	 net/vmw_vsock/vmw_vsock_virtio_transport_common.ko \
	 net/vmw_vsock/vmw_vsock_virtio_transport.ko
KMOD_FILES := $(addprefix $(KMOD_DIR)/,$(KMODS))
$(B)/initramfs.cpio: $(B)/forkbox $(B)/forkbox-init $(wildcard $(KMOD_FILES))
	@[ -d "$(KMOD_DIR)" ] || { echo "no guest kernel modules in $(KMOD_DIR): run make setup" >&2; exit 1; }
	$(B)/forkbox initramfs --init $(B)/forkbox-init --busybox $(BUSYBOX) \
		$(addprefix --module ,$(KMOD_FILES)) -o $@

# A freestanding guest in bzImage form, small enough for KVM-PVM hosts.
$(B)/tests/tiny-guest.bin: tests/guest/tiny.S
	@mkdir -p $(dir $@)
	$(CC) -nostdlib -ffreestanding -static -Wl,--build-id=none -Wl,-Ttext=0 \
	      -Wl,-e,0 -o $(B)/tests/tiny-guest.elf $<
	objcopy -O binary -j .text $(B)/tests/tiny-guest.elf $@

# The tiny guest as an ELF with a PVH entry note, booted as a vmlinux is:
# one PT_LOAD at 1 MiB, headers and note included, and the PT_NOTE.
$(B)/tests/tiny-pvh.elf: tests/guest/tiny-pvh.S
	@mkdir -p $(dir $@)
	$(CC) -nostdlib -ffreestanding -static -no-pie -Wl,--build-id=none \
	      -Wl,-Ttext-segment=0x100000 -Wl,-z,noseparate-code \
	      -Wl,-e,pvh_entry -o $@ $<

$(B)/tests/test_%: tests/unit/test_%.c $(B)/libforkbox.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) -o $@ $< $(B)/libforkbox.a -lcmocka $(LDLIBS)

# The agent's per-connection server, compiled for the host (sanitized like
# the rest), runs against the real client over socketpairs.
AGENT_HOST_OBJS := $(patsubst %.c,$(B)/%.o,$(wildcard guest/agent_serve*.c))
$(B)/tests/test_agent: tests/unit/test_agent.c $(AGENT_HOST_OBJS) $(B)/libforkbox.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) -o $@ $< $(AGENT_HOST_OBJS) $(B)/libforkbox.a \
	      -lcmocka $(LDLIBS)
-include $(AGENT_HOST_OBJS:.o=.d)

setup:
	scripts/setup

unit: $(UNIT_BINS) $(B)/tests/tiny-guest.bin $(B)/tests/tiny-pvh.elf $(B)/forkbox $(B)/forkboxd
	B=$(B) tests/run-unit

# Every test: unit tests, the tiny guest on this host's KVM, then real Linux
# guests (directly where the host's KVM runs Linux, else in the lab).
test: setup
	$(MAKE) all unit
	B=$(B) tests/integration/run

ASAN_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# Unit tests under ASan and UBSan (no Linux guest: quick, in CI).
unit-asan: setup
	$(MAKE) B=build-asan SAN="$(ASAN_SAN)" all unit

# Everything under ASan and UBSan, the lab's integration tests too.
test-asan: unit-asan
	B=build-asan tests/integration/run

demo: setup
	$(MAKE) all
	B=$(B) scripts/demo

bench: all
	bench/boot
	bench/fork

clean:
	rm -rf build build-asan build-dev

.PHONY: all setup unit unit-asan test test-asan demo bench clean vmlinux
-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(DAEMON_OBJS:.o=.d)

# ---- fuzzing (clang + libFuzzer) -------------------------------------------
# `make fuzz` builds every target in tests/fuzz/ with clang and
# -fsanitize=fuzzer,address,undefined and runs each for FUZZ_SECONDS
# (tests/fuzz/run); `make fuzz-build` only builds them. The library and the
# agent's serving side are compiled again with clang into $(B)/fuzz/ (never
# the gcc objects). Everything a run writes stays in $(B)/fuzz/ and a
# temporary directory under /tmp.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := virtqueue vsock_tx agent_host agent_guest frames bzimage
# Uninitialised locals get a fixed pattern: a read of one misbehaves the
# same way every run, so such a crash reproduces.
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all \
                -fno-omit-frame-pointer -ftrivial-auto-var-init=pattern
FUZZ_CFLAGS  := -std=gnu11 $(filter-out -Werror,$(WARN)) -O1 -g $(FUZZ_SAN) \
                -fsanitize=fuzzer-no-link -MMD -MP
FZ           := $(B)/fuzz
# Only the code under test and what it calls (tests/fuzz/stubs.c stands in
# for the VM that the virtio transport would stop), so work in progress
# elsewhere in the library cannot break the fuzz build.
FUZZ_LIB_SRCS := src/vmm/guest_mem.c src/util/error.c src/util/file.c src/util/sock.c src/util/clock.c \
                 src/arch/x86/boot.c src/box/frames.c \
                 $(wildcard src/devices/virtio/virtqueue.c src/devices/virtio/mmio.c \
                            src/devices/virtio/vsock*.c src/agent/*.c) \
                 tests/fuzz/stubs.c
FUZZ_LIB_OBJS := $(FUZZ_LIB_SRCS:%.c=$(FZ)/obj/%.o)
FUZZ_GUEST_OBJS := $(FZ)/obj/guest/agent_serve_wire.o \
                   $(FZ)/obj/guest/agent_serve_reinject.o
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FZ)/fuzz_%)

$(FZ)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -c -o $@ $<

$(FZ)/libforkbox.a: $(FUZZ_LIB_OBJS)
	$(AR) rcs $@ $^

# A target may #include a library .c file to reach its static functions;
# then its own copy wins and the archive's object is never pulled in.
$(FZ)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FZ)/libforkbox.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -Werror -fsanitize=fuzzer \
		-o $@ $< $(FUZZ_LINK_$*) $(FZ)/libforkbox.a -lpthread

# The agent's serving side: exec's and files' decoders are #included by the
# target; fork, exec and kill are wrapped to abort, so no input can run a
# command or signal a process on this machine.
FUZZ_LINK_agent_guest := $(FUZZ_GUEST_OBJS) \
	-Wl,--wrap=fork,--wrap=execvp,--wrap=kill,--wrap=posix_openpt
$(FZ)/fuzz_agent_guest: $(FUZZ_GUEST_OBJS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	B=$(B) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run $(FUZZ_TARGETS)

.PHONY: fuzz fuzz-build
-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_GUEST_OBJS:.o=.d) $(FUZZ_BINS:=.d)
# ---- end of fuzzing ---------------------------------------------------------
