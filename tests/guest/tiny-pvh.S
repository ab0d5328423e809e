/* A tiny freestanding guest in ELF form with a PVH entry note, for tests
 * that run on any KVM (KVM-PVM included): forkbox loads it as it loads an
 * uncompressed vmlinux and starts it at the note's address in 32-bit
 * protected mode, paging off, %ebx at the hvm_start_info.
 *
 * It reports what it found on COM1, one line each, then powers off:
 *   pvh magic 336ec578 version 00000001   (or "pvh bad magic ...")
 *   mode 32 paging off                    (CR0.PE set, CR0.PG clear)
 *   cmdline <the command line>
 *   memmap <entries>, then per entry: <addr> <size> <type> (low 32 bits)
 *   rsdp <the 8 bytes at rsdp_paddr>      ("RSD PTR ")
 *   module <up to 16 bytes of module 0>   (or "module none")
 * A command line starting "h" halts for ever instead (for timeouts).
 */
	.code32
	.text
	.globl pvh_entry
pvh_entry:
	cli
	mov $0x90000, %esp      /* our own stack, in low RAM */
	mov $0x3f8, %dx
	lea msg_magic, %esi
	cmpl $0x336ec578, (%ebx)
	je 1f
	lea msg_bad, %esi
1:	call puts
	mov (%ebx), %eax
	call puthex
	lea msg_version, %esi
	call puts
	mov 4(%ebx), %eax
	call puthex
	call newline

	lea msg_mode, %esi
	call puts
	mov %cr0, %eax
	lea msg_paging_on, %esi
	test $0x80000000, %eax
	jnz 1f
	test $1, %eax
	jz 1f
	lea msg_paging_off, %esi
1:	call puts

	lea msg_cmdline, %esi
	call puts
	mov 24(%ebx), %esi      /* cmdline_paddr */
	call puts
	call newline

	lea msg_memmap, %esi
	call puts
	mov 48(%ebx), %ecx      /* memmap_entries */
	mov %ecx, %eax
	call puthex
	call newline
	mov 40(%ebx), %edi      /* memmap_paddr */
2:	test %ecx, %ecx
	jz 3f
	mov (%edi), %eax        /* addr */
	call puthex
	call space
	mov 8(%edi), %eax       /* size */
	call puthex
	call space
	mov 16(%edi), %eax      /* type */
	call puthex
	call newline
	add $24, %edi
	dec %ecx
	jmp 2b

3:	lea msg_rsdp, %esi
	call puts
	mov 32(%ebx), %esi      /* rsdp_paddr */
	mov $8, %ecx
	call putn
	call newline

	lea msg_module, %esi
	call puts
	cmpl $0, 12(%ebx)       /* nr_modules */
	jne 4f
	lea msg_none, %esi
	call puts
	jmp 5f
4:	mov 16(%ebx), %edi      /* modlist_paddr */
	mov 8(%edi), %ecx       /* module 0's size, at most 16 */
	cmp $16, %ecx
	jbe 6f
	mov $16, %ecx
6:	mov (%edi), %esi
	call putn
5:	call newline

	mov 24(%ebx), %esi
	cmpb $'h', (%esi)
	je hang
poweroff:
	mov $0x3c0, %dx
	mov $0x34, %al          /* SLP_EN | SLP_TYP 5 */
	out %al, %dx
	jmp poweroff
hang:
	hlt
	jmp hang

/* puts: the NUL-ended string at %esi to port %dx */
puts:
	lodsb
	test %al, %al
	jz 1f
	out %al, %dx
	jmp puts
1:	ret

/* putn: %ecx bytes at %esi to port %dx */
putn:
	test %ecx, %ecx
	jz 1f
	lodsb
	out %al, %dx
	dec %ecx
	jmp putn
1:	ret

/* puthex: %eax as 8 hex digits */
puthex:
	push %ecx
	push %ebx
	mov %eax, %ebx
	mov $8, %ecx
1:	rol $4, %ebx
	mov %bl, %al
	and $0xf, %al
	add $'0', %al
	cmp $'9', %al
	jbe 2f
	add $('a' - '0' - 10), %al
2:	out %al, %dx
	dec %ecx
	jnz 1b
	pop %ebx
	pop %ecx
	ret

space:
	mov $' ', %al
	out %al, %dx
	ret

newline:
	mov $'\n', %al
	out %al, %dx
	ret

msg_magic:
	.asciz "pvh magic "
msg_bad:
	.asciz "pvh bad magic "
msg_version:
	.asciz " version "
msg_mode:
	.asciz "mode 32 "
msg_paging_off:
	.asciz "paging off\n"
msg_paging_on:
	.asciz "paging on or not protected\n"
msg_cmdline:
	.asciz "cmdline "
msg_memmap:
	.asciz "memmap "
msg_rsdp:
	.asciz "rsdp "
msg_module:
	.asciz "module "
msg_none:
	.asciz "none"

/* XEN_ELFNOTE_PHYS32_ENTRY: name "Xen", type 18, the entry's physical
 * address in 4 bytes (the ABI's size; Linux writes 8). */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4
	.long 4
	.long 18
	.asciz "Xen"
	.long pvh_entry

	.section .note.GNU-stack, "", @progbits
