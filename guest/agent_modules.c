/* Loads the kernel modules the initramfs carries in /lib/modules (flat:
 * every *.ko there), dependencies first, with finit_module. The order
 * comes from each module's own .modinfo section ("name=", "depends="),
 * read from the ELF file, so the initramfs needs no modules.dep and no
 * modprobe. A dependency that is not among the files is taken to be
 * built in. */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

#define MOD_MAX 64
#define MOD_FILE_MAX (64u << 20)
#define MOD_NAME_MAX 64
#define MOD_DEPS_MAX 512

struct module {
	char file[MOD_NAME_MAX + 8];
	char name[MOD_NAME_MAX];
	char deps[MOD_DEPS_MAX]; /* comma-separated */
	bool done;               /* loaded, or given up on */
	bool loaded;
};

/* Finds the .modinfo section; every offset checked against the file. */
static const char *find_modinfo(const uint8_t *img, size_t size, size_t *len)
{
	const Elf64_Ehdr *eh = (const void *)img;
	const Elf64_Shdr *sh, *strtab;
	size_t i;

	if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff > size ||
	    eh->e_shnum > (size - eh->e_shoff) / sizeof(Elf64_Shdr) ||
	    eh->e_shstrndx >= eh->e_shnum)
		return NULL;
	sh = (const void *)(img + eh->e_shoff);
	strtab = &sh[eh->e_shstrndx];
	if (strtab->sh_offset > size || strtab->sh_size > size - strtab->sh_offset)
		return NULL;
	for (i = 0; i < eh->e_shnum; i++) {
		const char *name = (const char *)img + strtab->sh_offset + sh[i].sh_name;

		if (sh[i].sh_name >= strtab->sh_size ||
		    strnlen(name, strtab->sh_size - sh[i].sh_name) ==
		    strtab->sh_size - sh[i].sh_name || strcmp(name, ".modinfo"))
			continue;
		if (sh[i].sh_offset > size || sh[i].sh_size > size - sh[i].sh_offset)
			return NULL;
		*len = sh[i].sh_size;
		return (const char *)img + sh[i].sh_offset;
	}
	return NULL;
}

/* name= and depends= from the NUL-separated key=value list. */
static void parse_modinfo(const char *info, size_t len, struct module *m)
{
	size_t off = 0;

	while (off < len) {
		const char *s = info + off;
		size_t n = strnlen(s, len - off);

		if (n > 5 && !strncmp(s, "name=", 5))
			snprintf(m->name, sizeof(m->name), "%.*s", (int)(n - 5), s + 5);
		else if (n >= 8 && !strncmp(s, "depends=", 8))
			snprintf(m->deps, sizeof(m->deps), "%.*s", (int)(n - 8), s + 8);
		off += n + 1;
	}
}

static void read_module(const char *dir, struct module *m)
{
	char path[512];
	struct stat st;
	const char *info;
	size_t len;
	void *img;
	int fd;

	/* Default name: the file's, with '-' as '_' as the kernel does. */
	snprintf(m->name, sizeof(m->name), "%.*s", (int)(strlen(m->file) - 3), m->file);
	for (char *c = m->name; *c; c++)
		if (*c == '-')
			*c = '_';
	snprintf(path, sizeof(path), "%s/%s", dir, m->file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size <= MOD_FILE_MAX) {
		img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (img != MAP_FAILED) {
			info = find_modinfo(img, (size_t)st.st_size, &len);
			if (info)
				parse_modinfo(info, len, m);
			munmap(img, (size_t)st.st_size);
		}
	}
	close(fd);
}

static struct module *by_name(struct module *mods, int n, const char *name,
			      size_t len)
{
	int i;

	for (i = 0; i < n; i++)
		if (strlen(mods[i].name) == len && !strncmp(mods[i].name, name, len))
			return &mods[i];
	return NULL;
}

/* 1: every dependency is loaded (or built in); 0: one is pending;
 * -1: one failed. */
static int deps_ready(struct module *mods, int n, const struct module *m)
{
	const char *p = m->deps;

	while (*p) {
		size_t len = strcspn(p, ",");
		struct module *dep = by_name(mods, n, p, len);

		if (dep && !dep->done)
			return 0;
		if (dep && !dep->loaded)
			return -1;
		p += len + (p[len] == ',');
	}
	return 1;
}

static void load(const char *dir, struct module *m)
{
	char path[512];
	int fd;

	m->done = true;
	snprintf(path, sizeof(path), "%s/%s", dir, m->file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fbg_log("open %s: %s", path, strerror(errno));
		return;
	}
	if (syscall(SYS_finit_module, fd, "", 0) == 0 || errno == EEXIST)
		m->loaded = true;
	else
		fbg_log("finit_module %s: %s", path, strerror(errno));
	close(fd);
}

void fbg_load_modules(const char *dir)
{
	static struct module mods[MOD_MAX];
	struct dirent *de;
	int n = 0, i, left, ready;
	bool progress = true;
	DIR *d = opendir(dir);

	if (!d)
		return; /* no modules: a kernel with everything built in */
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len < 4 || strcmp(de->d_name + len - 3, ".ko") ||
		    len >= sizeof(mods[0].file))
			continue;
		if (n == MOD_MAX) {
			fbg_log("more than %d modules in %s: ignoring the rest",
				MOD_MAX, dir);
			break;
		}
		memset(&mods[n], 0, sizeof(mods[n]));
		memcpy(mods[n].file, de->d_name, len + 1);
		read_module(dir, &mods[n]);
		n++;
	}
	closedir(d);

	for (left = n; left > 0 && progress;) {
		progress = false;
		for (i = 0; i < n; i++) {
			if (mods[i].done)
				continue;
			ready = deps_ready(mods, n, &mods[i]);
			if (ready == 0)
				continue;
			if (ready < 0) {
				fbg_log("%s: not loaded: a dependency failed",
					mods[i].file);
				mods[i].done = true;
			} else {
				load(dir, &mods[i]);
			}
			left--;
			progress = true;
		}
	}
	for (i = 0; i < n; i++)
		if (!mods[i].done)
			fbg_log("%s: not loaded: circular dependencies (%s)",
				mods[i].file, mods[i].deps);
}
