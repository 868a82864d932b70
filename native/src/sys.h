/* Raw system calls of the new mount API. glibc 2.34 (RHEL 9) lacks wrappers for them, so
 * they are called through syscall() by number: these numbers are in the unified syscall
 * table, the same on x86_64 and aarch64. */
#ifndef SYS_H
#define SYS_H

#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NR_open_tree 428
#define NR_move_mount 429
#define NR_mount_setattr 442

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC 02000000 /* O_CLOEXEC */
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#define IDM_MOUNT_ATTR_RDONLY 0x00000001
#define IDM_MOUNT_ATTR_IDMAP 0x00100000

struct idm_mount_attr {
	uint64_t attr_set;
	uint64_t attr_clr;
	uint64_t propagation;
	uint64_t userns_fd;
};

static inline int sys_open_tree(int dfd, const char *path, unsigned int flags)
{
	return (int)syscall(NR_open_tree, dfd, path, flags);
}

static inline int sys_move_mount(int from_dfd, const char *from, int to_dfd, const char *to,
				 unsigned int flags)
{
	return (int)syscall(NR_move_mount, from_dfd, from, to_dfd, to, flags);
}

static inline int sys_mount_setattr(int dfd, const char *path, unsigned int flags,
				    struct idm_mount_attr *attr, size_t size)
{
	return (int)syscall(NR_mount_setattr, dfd, path, flags, attr, size);
}

#endif
