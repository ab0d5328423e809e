/* A tiny freestanding guest in bzImage form, for tests that run on any KVM,
 * KVM-PVM included (it does little at CPL0). forkbox loads it like Linux:
 * setup header, zero page in %rsi, 64-bit entry at 1 MiB + 0x200.
 *
 * It echoes its command line to COM1, then acts on the line's first
 * character:
 *   c  run-channel mode (the line `forkbox run` builds starts "console="):
 *      INIT, a STDOUT frame "hi\n", a STDERR frame "err\n", EXIT 3 on COM2
 *   x  a STDOUT frame header claiming 0xffffffff bytes (hostile), then off
 *   r  ACPI reset register      k  i8042 reset command
 *   n  the kernel's panic line, then a reset
 *   t  triple fault             h  halt for ever (for timeouts)
 *   g  garbage to every port from 0 to 0x3ff and to unclaimed MMIO, then off
 *   v  drives the first virtio-mmio device (boot it with virtio-rng) with
 *      a descriptor that chains to itself, then halts: a hostile driver
 *   w  the same, with a buffer far outside guest RAM and a huge length
 *   z  counts for ever (for snapshot tests): "int\n", then a line "z" +
 *      the count in 16 hex digits for 1, 2, 3...; the count is in %r12 and
 *      at 3 MiB, and any copy that disagrees prints "BAD\n" and powers off.
 *      "zf" also keeps it in %xmm0 ("sse\n") and, with AVX, in %ymm1's
 *      upper half ("avx\n") (KVM-PVM cannot run these from this guest)
 *   m  writes generation after generation into 512 pages (2 MiB at 4 MiB):
 *      each pass checks that every page still holds the generation before
 *      (at two offsets), writes the next, then checks it; a line "m" every 64
 *      generations, "BAD\n" and power-off on the first page that
 *      disagrees (for fork tests: no page may go back in time)
 *   anything else: ACPI S5 power-off
 */
	.text
	.globl _start
_start:
	.org 0x1f1
	.byte 1                 /* setup_sects: the kernel is at 0x400 */
	.org 0x1fe
	.word 0xaa55
	.byte 0xeb, 0x66        /* jump over the header: it ends at 0x268 */
	.ascii "HdrS"
	.word 0x020f            /* boot protocol 2.15 */
	.org 0x211
	.byte 0x01              /* LOADED_HIGH */
	.org 0x22c
	.long 0x7fffffff        /* initrd_addr_max */
	.org 0x236
	.word 0x0001            /* XLF_KERNEL_64 */
	.long 2047              /* cmdline_size */
	.org 0x260
	.long 0x100000          /* init_size */
	.org 0x600              /* 0x400 + 0x200: the 64-bit entry */
	.code64
entry64:
	mov $0x3f8, %dx
	mov 0x228(%rsi), %ebx   /* cmd_line_ptr */
	mov %rbx, %rdi
	call puts
	mov $'\n', %al
	out %al, %dx
	movb (%rbx), %al
	cmp $'c', %al
	je channel
	cmp $'x', %al
	je bad_frame
	cmp $'r', %al
	je acpi_reset
	cmp $'k', %al
	je kbd_reset
	cmp $'n', %al
	je panic
	cmp $'t', %al
	je triple
	cmp $'h', %al
	je hang
	cmp $'g', %al
	je garbage
	cmp $'v', %al
	je virtio_loop
	cmp $'w', %al
	je virtio_wild
	cmp $'z', %al
	je count
	cmp $'m', %al
	je many
poweroff:
	mov $0x3c0, %dx
	mov $0x34, %al          /* SLP_EN | SLP_TYP 5 */
	out %al, %dx
	jmp poweroff

/* puts: the NUL-ended string at %rdi to port %dx */
puts:
	movb (%rdi), %al
	test %al, %al
	jz 1f
	out %al, %dx
	inc %rdi
	jmp puts
1:	ret

/* send: %rcx bytes at %rdi to COM2 */
send:
	mov $0x2f8, %dx
1:	test %rcx, %rcx
	jz 2f
	movb (%rdi), %al
	out %al, %dx
	inc %rdi
	dec %rcx
	jmp 1b
2:	ret

channel:
	lea frames(%rip), %rdi
	mov $(frames_end - frames), %rcx
	call send
	jmp poweroff

bad_frame:
	lea huge(%rip), %rdi
	mov $5, %rcx
	call send
	lea frames(%rip), %rdi  /* a well-formed tail the host must ignore */
	mov $(frames_end - frames), %rcx
	call send
	jmp poweroff

acpi_reset:
	mov $0x3c2, %dx
	mov $1, %al
	out %al, %dx
	jmp acpi_reset

kbd_reset:
	mov $0x64, %dx
	mov $0xfe, %al
	out %al, %dx
	jmp kbd_reset

panic:
	lea panic_msg(%rip), %rdi
	call puts
	jmp acpi_reset

triple:
	lidt null_idt(%rip)
	ud2

hang:
	cli
	hlt
	jmp hang

garbage:
	xor %edx, %edx
1:	mov $0xa5, %al
	out %al, %dx
	in %dx, %al
	inc %dx
	cmp $0x400, %dx
	jne 1b
	movabs $0xd0000000, %rax
	movl $0xdeadbeef, (%rax)
	movl (%rax), %ecx
	movabs $0xf0000000, %rax
	movq $-1, (%rax)
	jmp poweroff

/* Sets up queue 0 of the virtio-mmio device at 0xd0000000 with its rings
 * at 2 MiB, then descriptor 0 from %rax (address), %ecx (length), %dx
 * (flags), offers it and notifies. */
virtio_attack:
	movabs $0xd0000000, %rbx
	movl $0, 0x70(%rbx)
	movl $1, 0x70(%rbx)
	movl $3, 0x70(%rbx)
	movl $1, 0x24(%rbx)
	movl $1, 0x20(%rbx)     /* VIRTIO_F_VERSION_1 */
	movl $0xb, 0x70(%rbx)
	movl $0, 0x30(%rbx)
	movl $16, 0x38(%rbx)
	movl $0x200000, 0x80(%rbx)
	movl $0, 0x84(%rbx)
	movl $0x201000, 0x90(%rbx)
	movl $0, 0x94(%rbx)
	movl $0x202000, 0xa0(%rbx)
	movl $0, 0xa4(%rbx)
	movl $1, 0x44(%rbx)
	movl $0xf, 0x70(%rbx)   /* DRIVER_OK */
	mov $0x200000, %rdi
	mov %rax, (%rdi)
	movl %ecx, 8(%rdi)
	movw %dx, 12(%rdi)
	movw $0, 14(%rdi)       /* next: itself */
	mov $0x201000, %rdi
	movw $0, (%rdi)
	movw $0, 4(%rdi)        /* ring[0]: descriptor 0 */
	movw $1, 2(%rdi)        /* idx */
	movl $0, 0x50(%rbx)     /* notify queue 0 */
	jmp hang

virtio_loop:
	mov $0x300000, %rax
	mov $16, %ecx
	mov $3, %dx             /* NEXT | WRITE, next = 0: a loop */
	jmp virtio_attack

virtio_wild:
	movabs $0x7fff00000000, %rax
	mov $0x7fffffff, %ecx
	mov $2, %dx             /* WRITE */
	jmp virtio_attack

count:
	xor %r13d, %r13d        /* %r13: 0 registers only, 1 SSE, 2 AVX */
	lea int_msg(%rip), %rdi
	cmpb $'f', 1(%rbx)
	jne 1f
	mov %cr4, %rax
	or $0x600, %rax         /* OSFXSR | OSXMMEXCPT: SSE on */
	mov %rax, %cr4
	mov $1, %r13d
	lea sse_msg(%rip), %rdi
	mov $1, %eax
	cpuid
	and $0x14000000, %ecx   /* XSAVE and AVX */
	cmp $0x14000000, %ecx
	jne 1f
	mov %cr4, %rax
	or $0x40000, %rax       /* OSXSAVE */
	mov %rax, %cr4
	xor %ecx, %ecx
	xor %edx, %edx
	mov $7, %eax            /* XCR0: x87, SSE, AVX */
	xsetbv
	mov $2, %r13d
	lea avx_msg(%rip), %rdi
1:	mov $0x3f8, %dx
	call puts
	mov $0x300000, %r15
	xor %r12d, %r12d
	mov %r12, (%r15)
	call count_copy
2:	cmp %r12, (%r15)        /* every copy still says %r12? */
	jne count_bad
	test %r13, %r13
	jz 3f
	movq %xmm0, %rax
	cmp %r12, %rax
	jne count_bad
	cmp $2, %r13
	jne 3f
	vextractf128 $1, %ymm1, %xmm2
	movq %xmm2, %rax
	cmp %r12, %rax
	jne count_bad
3:	inc %r12
	mov %r12, (%r15)
	call count_copy
	mov $'z', %al
	out %al, %dx
	mov %r12, %rbx
	mov $16, %ecx
4:	rol $4, %rbx
	mov %bl, %al
	and $0xf, %al
	add $'0', %al
	cmp $'9', %al
	jbe 5f
	add $('a' - '0' - 10), %al
5:	out %al, %dx
	dec %ecx
	jnz 4b
	mov $'\n', %al
	out %al, %dx
	jmp 2b
/* The count into %xmm0 and %ymm1's upper half, as far as %r13 allows. */
count_copy:
	test %r13, %r13
	jz 1f
	movq %r12, %xmm0
	cmp $2, %r13
	jne 1f
	vbroadcastsd (%r15), %ymm1
1:	ret
/* %r12 the generation written last; %r14 the next page to look at. */
many:
	mov $0x3f8, %dx
	xor %r12d, %r12d
1:	mov $0x400000, %r14
2:	cmp %r12, (%r14)        /* the generation before, still there? */
	jne count_bad
	cmp %r12, 2048(%r14)
	jne count_bad
	lea 1(%r12), %rax
	mov %rax, (%r14)
	mov %rax, 2048(%r14)
	add $4096, %r14
	cmp $0x600000, %r14
	jb 2b
	inc %r12
	mov $0x400000, %r14
3:	cmp %r12, (%r14)        /* and the one just written */
	jne count_bad
	cmp %r12, 2048(%r14)
	jne count_bad
	add $4096, %r14
	cmp $0x600000, %r14
	jb 3b
	test $63, %r12
	jnz 1b
	mov $'m', %al
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
	jmp 1b
count_bad:
	lea bad_msg(%rip), %rdi
	call puts
	jmp poweroff

sse_msg:
	.ascii "sse\n\0"
avx_msg:
	.ascii "avx\n\0"
int_msg:
	.ascii "int\n\0"
bad_msg:
	.ascii "BAD\n\0"
panic_msg:
	.ascii "Kernel panic - not syncing: tiny guest panics on purpose\n\0"
null_idt:
	.word 0
	.quad 0
huge:
	.byte 'O', 0xff, 0xff, 0xff, 0xff
frames:
	.byte 'I', 0, 0, 0, 0
	.byte 'O', 3, 0, 0, 0
	.ascii "hi\n"
	.byte 'E', 4, 0, 0, 0
	.ascii "err\n"
	.byte 'X', 4, 0, 0, 0, 3, 0, 0, 0
frames_end:
