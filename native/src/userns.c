#define _GNU_SOURCE
#include "userns.h"
#include "errors.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Write the whole map in one write(): the kernel accepts exactly one write per map file. */
static int write_map(pid_t pid, const char *file, const struct idmap *map, char *msg, size_t msglen)
{
	char path[64], text[IDMAP_MAX_TEXT + 2];
	int fd, len, saved;
	ssize_t w;

	len = idmap_proc_text(map, text, sizeof(text));
	if (len < 0) {
		errno = E2BIG;
		snprintf(msg, msglen, "%s text does not fit in %d bytes (E2BIG)", file, IDMAP_MAX_TEXT);
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		saved = errno;
		snprintf(msg, msglen, "open %s: %s (%s)", path, errno_name(saved), strerror(saved));
		errno = saved;
		return -1;
	}
	w = write(fd, text, (size_t)len);
	saved = errno;
	close(fd);
	if (w != len) {
		if (w >= 0)
			saved = EIO;
		snprintf(msg, msglen, "write %s: %s (%s)", path, errno_name(saved), strerror(saved));
		errno = saved;
		return -1;
	}
	return 0;
}

int userns_fd_for_maps(const struct idmap *uidmap, const struct idmap *gidmap, char *msg, size_t msglen)
{
	int ready[2], nsfd = -1, child_err = 0, saved = 0;
	char path[64];
	pid_t parent = getpid(), pid;
	ssize_t r;

	if (pipe2(ready, O_CLOEXEC) < 0) {
		saved = errno;
		snprintf(msg, msglen, "pipe2: %s (%s)", errno_name(saved), strerror(saved));
		errno = saved;
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		saved = errno;
		close(ready[0]);
		close(ready[1]);
		snprintf(msg, msglen, "fork: %s (%s)", errno_name(saved), strerror(saved));
		errno = saved;
		return -1;
	}
	if (pid == 0) {
		/* The child only holds the namespace; it dies with its parent at the latest. */
		int e = 0;
		close(ready[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		if (unshare(CLONE_NEWUSER) < 0)
			e = errno;
		if (write(ready[1], &e, sizeof(e)) != (ssize_t)sizeof(e))
			_exit(1);
		close(ready[1]);
		for (;;)
			pause();
	}
	close(ready[1]);
	do
		r = read(ready[0], &child_err, sizeof(child_err));
	while (r < 0 && errno == EINTR);
	close(ready[0]);
	if (r != (ssize_t)sizeof(child_err)) {
		saved = ECHILD;
		snprintf(msg, msglen, "user namespace helper died before it was ready (ECHILD)");
	} else if (child_err != 0) {
		saved = child_err;
		snprintf(msg, msglen, "unshare(CLONE_NEWUSER): %s (%s)", errno_name(saved), strerror(saved));
	} else if (write_map(pid, "uid_map", uidmap, msg, msglen) < 0 ||
		   write_map(pid, "gid_map", gidmap, msg, msglen) < 0) {
		saved = errno;
	} else {
		snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
		nsfd = open(path, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0) {
			saved = errno;
			snprintf(msg, msglen, "open %s: %s (%s)", path, errno_name(saved), strerror(saved));
		}
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (nsfd < 0)
		errno = saved;
	return nsfd;
}
