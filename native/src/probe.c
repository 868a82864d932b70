/* `idmapped-mount probe DIR`: can this kernel and the filesystem holding DIR give image
 * layers an arbitrary (non-contiguous) ID map without copying them?
 *
 * Process layout, chosen so that nothing is left behind on any path:
 *   parent  creates the scratch dir under DIR, blocks SIGINT/SIGTERM/SIGHUP/SIGQUIT, forks
 *           the worker, waits for its result or a signal, then removes the scratch dir.
 *           The parent enters a private mount namespace first, so no probe mount is ever
 *           visible outside it, and all of them vanish if the probe is killed outright.
 *   worker  runs the checks; writes the "checks" JSON to a pipe. It may be SIGKILLed at
 *           any point: the parent unmounts and removes what it left.
 *   userns  a short-lived child of the worker holding the user namespace for the map.
 */
#define _GNU_SOURCE
#include "probe.h"
#include "errors.h"
#include "json.h"
#include "sys.h"
#include "userns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IDMAPPED_MOUNT_VERSION
#define IDMAPPED_MOUNT_VERSION "0.0.0"
#endif

#define MSG_MAX 512

struct check {
	int ran;    /* 0: not run (an earlier check failed) */
	int ok;
	int err;    /* errno, 0 for none */
	char msg[MSG_MAX];
};

static const struct {
	unsigned long magic;
	const char *name;
} fs_names[] = {
	{0xEF53, "ext4"}, /* ext2/ext3/ext4 share the magic; one driver serves them all */
	{0x58465342, "xfs"},
	{0x9123683E, "btrfs"},
	{0x01021994, "tmpfs"},
	{0x794c7630, "overlay"},
	{0x858458f6, "ramfs"},
	{0x6969, "nfs"},
	{0x65735546, "fuse"},
	{0x2fc12fc1, "zfs"},
	{0xF2F52010, "f2fs"},
	{0xca451a4e, "bcachefs"},
	{0x73717368, "squashfs"},
	{0xE0F5E1E2, "erofs"},
	{0xFF534D42, "cifs"},
	{0xFE534D42, "smb2"},
	{0x00c36400, "ceph"},
	{0x01161970, "gfs2"},
	{0x7461636f, "ocfs2"},
	{0x4d44, "vfat"},
	{0x2011BAB0, "exfat"},
	{0x5346544e, "ntfs"},
	{0x52654973, "reiserfs"},
	{0x3153464a, "jfs"},
	{0x9fa0, "proc"},
	{0x62656572, "sysfs"},
	{0x61756673, "aufs"},
	{0x6e667364, "nfsd"},
};

static const char *fs_name(unsigned long magic)
{
	size_t i;
	for (i = 0; i < sizeof(fs_names) / sizeof(fs_names[0]); i++)
		if (fs_names[i].magic == magic)
			return fs_names[i].name;
	return "unknown";
}

static void check_fail(struct check *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check_fail(struct check *c, int err, const char *fmt, ...)
{
	va_list ap;
	c->ran = 1;
	c->ok = 0;
	c->err = err;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
}

static void check_not_run(struct check *c, const char *because)
{
	c->ran = 0;
	c->ok = 0;
	c->err = 0;
	snprintf(c->msg, sizeof(c->msg), "not run: %s", because);
}

static void print_check(FILE *f, const char *name, const struct check *c)
{
	fprintf(f, "\"%s\": {\"ok\": %s, \"errno\": ", name, c->ok ? "true" : "false");
	json_str(f, c->err ? errno_name(c->err) : NULL);
	fputs(", \"message\": ", f);
	json_str(f, c->msg);
	fputc('}', f);
}

/* mount_api: do open_tree and mount_setattr exist? Called with arguments the kernel rejects
 * before doing anything, so the only interesting answer is ENOSYS. */
static void check_mount_api(struct check *c)
{
	struct idm_mount_attr attr;
	int fd;

	c->ran = 1;
	fd = sys_open_tree(-1, "", ~0u);
	if (fd >= 0)
		close(fd);
	else if (errno == ENOSYS) {
		check_fail(c, ENOSYS, "open_tree: ENOSYS: the kernel has no new mount API (added in 5.2)");
		return;
	}
	memset(&attr, 0, sizeof(attr));
	if (sys_mount_setattr(-1, "", 0, &attr, sizeof(attr)) < 0 && errno == ENOSYS) {
		check_fail(c, ENOSYS, "mount_setattr: ENOSYS: the kernel cannot make idmapped mounts (added in 5.12)");
		return;
	}
	c->ok = 1;
	c->err = 0;
	snprintf(c->msg, sizeof(c->msg), "open_tree, move_mount and mount_setattr are available");
}

/* --- files owned at the edges of every extent, and one unmapped id ----------------------- */

struct probe_file {
	char name[32];
	uint32_t uid, gid;          /* on disk */
	int uid_checked, gid_checked; /* which id this file tests */
};

struct file_set {
	size_t n;
	struct probe_file f[4 * IDMAP_MAX_EXTENTS + 2];
};

/* An id no extent covers (0 if the map covers everything below 2^32-1: then -1). */
static int64_t unmapped_id(const struct idmap *map)
{
	uint32_t dummy;
	size_t i;
	if (!idmap_to_host(map, 0, &dummy))
		return 0;
	for (i = 0; i < map->n; i++) {
		uint64_t after = (uint64_t)map->ext[i].container + map->ext[i].size;
		if (after < IDMAP_ID_LIMIT && !idmap_to_host(map, (uint32_t)after, &dummy))
			return (int64_t)after;
	}
	return -1;
}

static void add_file(struct file_set *s, char kind, uint32_t uid, uint32_t gid, int cu, int cg)
{
	struct probe_file *p = &s->f[s->n++];
	snprintf(p->name, sizeof(p->name), "%c%zu", kind, s->n);
	p->uid = uid;
	p->gid = gid;
	p->uid_checked = cu;
	p->gid_checked = cg;
}

static void plan_files(struct file_set *s, const struct idmap *um, const struct idmap *gm)
{
	uint32_t base_uid = um->ext[0].container, base_gid = gm->ext[0].container;
	int64_t uu = unmapped_id(um), ug = unmapped_id(gm);
	size_t i;

	s->n = 0;
	for (i = 0; i < um->n; i++) {
		add_file(s, 'u', um->ext[i].container, base_gid, 1, 0);
		if (um->ext[i].size > 1)
			add_file(s, 'u', um->ext[i].container + um->ext[i].size - 1, base_gid, 1, 0);
	}
	for (i = 0; i < gm->n; i++) {
		add_file(s, 'g', base_uid, gm->ext[i].container, 0, 1);
		if (gm->ext[i].size > 1)
			add_file(s, 'g', base_uid, gm->ext[i].container + gm->ext[i].size - 1, 0, 1);
	}
	if (uu >= 0 && ug >= 0)
		add_file(s, 'x', (uint32_t)uu, (uint32_t)ug, 1, 1);
}

static uint32_t read_overflow_id(const char *path)
{
	char buf[32] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint32_t v = 65534;
	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) > 0)
			v = (uint32_t)strtoul(buf, NULL, 10);
		close(fd);
	}
	return v;
}

static int make_files(int lowerfd, const struct file_set *s, struct check *c)
{
	size_t i;
	for (i = 0; i < s->n; i++) {
		int fd = openat(lowerfd, s->f[i].name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0) {
			check_fail(c, errno, "creating a test file in the scratch dir: %s (%s)", errno_name(errno),
				   strerror(errno));
			return -1;
		}
		if (fchown(fd, s->f[i].uid, s->f[i].gid) < 0) {
			int e = errno;
			close(fd);
			check_fail(c, e, "chown %u:%u of a test file: %s (%s)", s->f[i].uid, s->f[i].gid,
				   errno_name(e), strerror(e));
			return -1;
		}
		close(fd);
	}
	return 0;
}

/* Every planned file must stat through dirfd with the ids the map gives (the overflow id
 * for an unmapped one). */
static int verify_ownership(int dirfd, const char *where, const struct file_set *s, const struct idmap *um,
			    const struct idmap *gm, struct check *c)
{
	uint32_t ofu = read_overflow_id("/proc/sys/fs/overflowuid");
	uint32_t ofg = read_overflow_id("/proc/sys/fs/overflowgid");
	size_t i;

	for (i = 0; i < s->n; i++) {
		const struct probe_file *p = &s->f[i];
		struct stat st;
		uint32_t want;
		if (fstatat(dirfd, p->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			check_fail(c, errno, "stat through the %s: %s (%s)", where, errno_name(errno), strerror(errno));
			return -1;
		}
		if (p->uid_checked) {
			if (!idmap_to_host(um, p->uid, &want))
				want = ofu;
			if (st.st_uid != want) {
				check_fail(c, 0, "a file owned by uid %u on disk stats as uid %u through the %s, expected %u",
					   p->uid, (unsigned)st.st_uid, where, want);
				return -1;
			}
		}
		if (p->gid_checked) {
			if (!idmap_to_host(gm, p->gid, &want))
				want = ofg;
			if (st.st_gid != want) {
				check_fail(c, 0, "a file owned by gid %u on disk stats as gid %u through the %s, expected %u",
					   p->gid, (unsigned)st.st_gid, where, want);
				return -1;
			}
		}
	}
	return 0;
}

/* --- the worker ------------------------------------------------------------------------ */

static void run_checks(int scratchfd, const struct idmap *um, const struct idmap *gm, struct check *api,
		       struct check *idm, struct check *ovl)
{
	static struct file_set files;
	struct idm_mount_attr attr;
	char msg[MSG_MAX], opts[256];
	int lowerfd = -1, idmfd = -1, mergedfd = -1, nsfd = -1, tree = -1;
	const char *dirs[] = {"lower", "idmapped", "upper", "work", "merged"};
	size_t i;

	check_mount_api(api);
	if (!api->ok) {
		check_not_run(idm, "mount_api failed");
		check_not_run(ovl, "mount_api failed");
		return;
	}
	check_not_run(ovl, "idmapped_mount failed");
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (mkdirat(scratchfd, dirs[i], 0755) < 0) {
			check_fail(idm, errno, "mkdir %s in the scratch dir: %s (%s)", dirs[i], errno_name(errno),
				   strerror(errno));
			return;
		}
	}
	lowerfd = openat(scratchfd, "lower", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (lowerfd < 0) {
		check_fail(idm, errno, "open lower: %s (%s)", errno_name(errno), strerror(errno));
		return;
	}
	plan_files(&files, um, gm);
	if (make_files(lowerfd, &files, idm) < 0)
		goto out;

	nsfd = userns_fd_for_maps(um, gm, msg, sizeof(msg));
	if (nsfd < 0) {
		check_fail(idm, errno, "%s", msg);
		goto out;
	}
	tree = sys_open_tree(scratchfd, "lower", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (tree < 0) {
		check_fail(idm, errno, "open_tree(OPEN_TREE_CLONE): %s (%s)", errno_name(errno), strerror(errno));
		goto out;
	}
	memset(&attr, 0, sizeof(attr));
	attr.attr_set = IDM_MOUNT_ATTR_IDMAP;
	attr.userns_fd = (uint64_t)nsfd;
	if (sys_mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
		int e = errno;
		check_fail(idm, e, "mount_setattr(MOUNT_ATTR_IDMAP): %s (%s): the filesystem or kernel refuses idmapped mounts",
			   errno_name(e), strerror(e));
		goto out;
	}
	if (sys_move_mount(tree, "", scratchfd, "idmapped", MOVE_MOUNT_F_EMPTY_PATH) < 0) {
		check_fail(idm, errno, "move_mount: %s (%s)", errno_name(errno), strerror(errno));
		goto out;
	}
	idmfd = openat(scratchfd, "idmapped", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (idmfd < 0) {
		check_fail(idm, errno, "open the idmapped mount: %s (%s)", errno_name(errno), strerror(errno));
		goto out;
	}
	if (verify_ownership(idmfd, "idmapped mount", &files, um, gm, idm) < 0)
		goto out;
	idm->ran = 1;
	idm->ok = 1;
	snprintf(idm->msg, sizeof(idm->msg),
		 "idmapped bind mount with a %zu-extent uid map and %zu-extent gid map: %zu files at extent edges "
		 "stat with the mapped ids", um->n, gm->n, files.n);

	/* /proc/self/fd paths: DIR may contain ',' or ':' which overlay's options cannot carry. */
	snprintf(opts, sizeof(opts),
		 "lowerdir=/proc/self/fd/%d/idmapped,upperdir=/proc/self/fd/%d/upper,workdir=/proc/self/fd/%d/work",
		 scratchfd, scratchfd, scratchfd);
	{
		char target[64];
		snprintf(target, sizeof(target), "/proc/self/fd/%d/merged", scratchfd);
		if (mount("overlay", target, "overlay", 0, opts) < 0) {
			int e = errno;
			check_fail(ovl, e, "overlay mount with the idmapped mount as lower layer: %s (%s)", errno_name(e),
				   strerror(e));
			goto out;
		}
	}
	/* Test hook (tests/native/test_probe.py): stop with every probe mount in place, so a
	 * test can signal the parent at the worst moment without racing it. */
	if (getenv("IDMAPPED_MOUNT_TEST_STOP_WORKER"))
		raise(SIGSTOP);
	mergedfd = openat(scratchfd, "merged", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (mergedfd < 0) {
		check_fail(ovl, errno, "open the overlay mount: %s (%s)", errno_name(errno), strerror(errno));
		goto out;
	}
	if (verify_ownership(mergedfd, "overlay on the idmapped lower", &files, um, gm, ovl) < 0)
		goto out;
	ovl->ran = 1;
	ovl->ok = 1;
	ovl->err = 0;
	snprintf(ovl->msg, sizeof(ovl->msg), "overlay on the idmapped lower layer shows the mapped ids");
out:
	if (mergedfd >= 0)
		close(mergedfd);
	if (idmfd >= 0)
		close(idmfd);
	if (tree >= 0)
		close(tree);
	if (nsfd >= 0)
		close(nsfd);
	if (lowerfd >= 0)
		close(lowerfd);
}

static void write_checks(FILE *f, const struct check *api, const struct check *idm, const struct check *ovl)
{
	fputc('{', f);
	print_check(f, "mount_api", api);
	fputs(", ", f);
	print_check(f, "idmapped_mount", idm);
	fputs(", ", f);
	print_check(f, "overlay_idmapped_lower", ovl);
	fputc('}', f);
}

/* --- the parent ------------------------------------------------------------------------ */

/* Remove a tree of plain files and dirs under parentfd/name without following symlinks. */
static int remove_tree(int parentfd, const char *name, int depth)
{
	int fd, rc = 0;
	DIR *d;
	struct dirent *de;

	if (unlinkat(parentfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	if (errno != ENOTEMPTY && errno != EEXIST)
		return unlinkat(parentfd, name, 0);
	if (depth > 8)
		return -1;
	fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) {
			if (remove_tree(dirfd(d), de->d_name, depth + 1) < 0)
				rc = -1;
		} else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
			rc = -1;
		}
	}
	closedir(d);
	if (unlinkat(parentfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = -1;
	return rc;
}

static void unmount_in(int scratchfd, const char *name)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", scratchfd, name);
	umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW);
}

static int make_scratch(int dirfd, char *name, size_t namelen)
{
	struct timespec ts;
	int tries;

	for (tries = 0; tries < 16; tries++) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		snprintf(name, namelen, ".idmapped-mount-probe.%d.%lx", (int)getpid(),
			 (unsigned long)(ts.tv_nsec ^ (ts.tv_sec << 20)) + (unsigned long)tries);
		/* mkdirat never follows a symlink at the final component: a planted link is EEXIST. */
		if (mkdirat(dirfd, name, 0700) == 0)
			return 0;
		if (errno != EEXIST)
			return -1;
	}
	return -1;
}

static void print_error(const char *dir, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void print_error(const char *dir, int err, const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "idmapped-mount: probe: %s\n", msg);
	printf("{\"version\": \"%s\", \"path\": ", IDMAPPED_MOUNT_VERSION);
	json_str(stdout, dir);
	printf(", \"error\": {\"errno\": ");
	json_str(stdout, err ? errno_name(err) : NULL);
	printf(", \"message\": ");
	json_str(stdout, msg);
	printf("}}\n");
}

int probe_main(const char *dir, const struct idmap *um, const struct idmap *gm, int timeout_ms)
{
	struct timespec t0;
	int timed_out = 0;
	struct check api, idm, ovl;
	struct utsname uts;
	struct statfs sfs;
	char scratch[96], real[PATH_MAX], *result = NULL;
	size_t result_len = 0;
	int dfd, scratchfd = -1, pfd[2], sfd, status = 0, sig = 0, rc = 0;
	sigset_t mask, oldmask;
	pid_t worker;
	FILE *mem;

	memset(&api, 0, sizeof(api));
	memset(&idm, 0, sizeof(idm));
	memset(&ovl, 0, sizeof(ovl));
	if (geteuid() != 0) {
		print_error(dir, EPERM, "must run as root (EPERM): idmapped mounts need CAP_SYS_ADMIN");
		return 1;
	}
	/* A private mount namespace, entered before DIR is opened (open_tree only clones mounts
	 * of the caller's namespace): every probe mount lives and dies with this process. */
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		int e = errno;
		print_error(dir, e, "private mount namespace: %s (%s)", errno_name(e), strerror(e));
		return 1;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int e = errno;
		print_error(dir, e, "cannot open %s as a directory: %s (%s)", dir, errno_name(e), strerror(e));
		return 1;
	}
	if (uname(&uts) < 0)
		strcpy(uts.release, "unknown");
	if (fstatfs(dfd, &sfs) < 0) {
		int e = errno;
		print_error(dir, e, "statfs %s: %s (%s)", dir, errno_name(e), strerror(e));
		close(dfd);
		return 1;
	}
	if (!realpath(dir, real))
		snprintf(real, sizeof(real), "%s", dir);

	/* Signals are taken through a signalfd from here on, so the parent always cleans up. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);

	if (make_scratch(dfd, scratch, sizeof(scratch)) < 0 ||
	    (scratchfd = openat(dfd, scratch, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		int e = errno;
		check_mount_api(&api);
		check_fail(&idm, e, "cannot create a scratch directory in %s: %s (%s)", real, errno_name(e), strerror(e));
		check_not_run(&ovl, "idmapped_mount failed");
		scratch[0] = '\0';
		goto print;
	}
	if (sfd < 0 || pipe2(pfd, O_CLOEXEC) < 0) {
		int e = errno;
		check_mount_api(&api);
		check_fail(&idm, e, "signalfd/pipe: %s (%s)", errno_name(e), strerror(e));
		check_not_run(&ovl, "idmapped_mount failed");
		goto cleanup;
	}
	worker = fork();
	if (worker == 0) {
		FILE *out;
		close(pfd[0]);
		sigprocmask(SIG_SETMASK, &oldmask, NULL);
		run_checks(scratchfd, um, gm, &api, &idm, &ovl);
		out = fdopen(pfd[1], "w");
		if (out) {
			write_checks(out, &api, &idm, &ovl);
			fclose(out);
		}
		_exit(0);
	}
	close(pfd[1]);
	if (worker < 0) {
		int e = errno;
		close(pfd[0]);
		check_mount_api(&api);
		check_fail(&idm, e, "fork: %s (%s)", errno_name(e), strerror(e));
		check_not_run(&ovl, "idmapped_mount failed");
		goto cleanup;
	}
	mem = open_memstream(&result, &result_len);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd fds[2] = {{pfd[0], POLLIN, 0}, {sfd, POLLIN, 0}};
		struct timespec now;
		long left;
		int n;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = timeout_ms - ((now.tv_sec - t0.tv_sec) * 1000L + (now.tv_nsec - t0.tv_nsec) / 1000000L);
		if (left <= 0) {
			timed_out = 1;
			break;
		}
		n = poll(fds, 2, (int)left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (n == 0)
			continue;
		if (fds[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				sig = (int)si.ssi_signo;
				break;
			}
		}
		if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			char buf[4096];
			ssize_t r = read(pfd[0], buf, sizeof(buf));
			if (r > 0) {
				if (mem)
					fwrite(buf, 1, (size_t)r, mem);
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			break;
		}
	}
	close(pfd[0]);
	if (sig || timed_out)
		kill(worker, SIGKILL);
	while (waitpid(worker, &status, 0) < 0 && errno == EINTR)
		;
	if (mem)
		fclose(mem);
	if (timed_out) {
		check_mount_api(&api);
		check_fail(&idm, ETIMEDOUT, "the checks did not finish within %d ms (ETIMEDOUT): is the filesystem hung?",
			   timeout_ms);
		check_not_run(&ovl, "idmapped_mount failed");
		free(result);
		result = NULL;
	} else if (!sig && (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || result_len == 0)) {
		check_mount_api(&api);
		check_fail(&idm, 0, "the probe worker died (status %d) before reporting", status);
		check_not_run(&ovl, "idmapped_mount failed");
		free(result);
		result = NULL;
	}
cleanup:
	/* Unmount what the worker left (it shares our private namespace), then remove the tree. */
	unmount_in(scratchfd, "merged");
	unmount_in(scratchfd, "idmapped");
	close(scratchfd);
	if (remove_tree(dfd, scratch, 0) < 0) {
		fprintf(stderr, "idmapped-mount: probe: could not remove %s/%s: %s (%s)\n", real, scratch,
			errno_name(errno), strerror(errno));
		rc = 1;
	}
	if (sig) {
		fprintf(stderr, "idmapped-mount: probe: interrupted by signal %d; scratch dir removed\n", sig);
		free(result);
		close(dfd);
		return 128 + sig;
	}
print:
	close(dfd);
	if (sfd >= 0)
		close(sfd);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	printf("{\"version\": \"%s\", \"kernel\": ", IDMAPPED_MOUNT_VERSION);
	json_str(stdout, uts.release);
	printf(", \"path\": ");
	json_str(stdout, real);
	printf(", \"fs_type\": ");
	json_str(stdout, fs_name((unsigned long)sfs.f_type));
	printf(", \"fs_magic\": \"0x%lx\", \"uidmap\": ", (unsigned long)sfs.f_type);
	json_map(stdout, um);
	printf(", \"gidmap\": ");
	json_map(stdout, gm);
	printf(", \"checks\": ");
	if (result)
		fwrite(result, 1, result_len, stdout);
	else
		write_checks(stdout, &api, &idm, &ovl);
	printf("}\n");
	free(result);
	fflush(stdout);
	return rc;
}
