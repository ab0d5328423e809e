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
