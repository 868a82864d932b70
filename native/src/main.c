/* idmapped-mount: probe whether a filesystem can take idmapped mounts with a non-contiguous
 * ID map (and overlay on such a lower layer), or make such a mount. See docs/helper.md. */
#define _GNU_SOURCE
#include "errors.h"
#include "idmap.h"
#include "json.h"
#include "probe.h"
#include "sys.h"
#include "userns.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef IDMAPPED_MOUNT_VERSION
#define IDMAPPED_MOUNT_VERSION "0.0.0"
#endif

/* Same as plugins/module_utils/idmap.py DEFAULT_UIDMAP: the seed's non-contiguous shape. */
#define DEFAULT_MAP "0:1065537:65536,531571:531571:1,19997967:19997967:1"

static void usage(FILE *f)
{
	fputs("usage: idmapped-mount probe [--uidmap SPEC] [--gidmap SPEC] [--timeout SECONDS] DIR\n"
	      "       idmapped-mount mount --uidmap SPEC --gidmap SPEC [--recursive] [--read-only] SOURCE TARGET\n"
	      "       idmapped-mount --help | --version\n"
	      "\n"
	      "SPEC is Podman's container:host:size[,container:host:size...].\n"
	      "probe prints one JSON object describing whether the filesystem holding DIR can take an\n"
	      "idmapped mount with the map, and an overlay mount on such a lower layer. Default map\n"
	      "(uid and gid): " DEFAULT_MAP "\n"
	      "--timeout: give up on the checks after SECONDS (default 60; they take milliseconds).\n"
	      "Exit status: 0 ran (whatever it found), 1 could not run, 2 usage error.\n",
	      f);
}

static int usage_error(const char *fmt, const char *arg)
{
	fputs("idmapped-mount: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\n", stderr);
	usage(stderr);
	return 2;
}

static int parse_map_arg(const char *opt, const char *spec, struct idmap *map)
{
	struct idmap_error err;
	if (idmap_parse(spec, strlen(spec), map, &err) != IDMAP_OK) {
		fprintf(stderr, "idmapped-mount: %s: invalid ID map (%s): %s\n", opt, idmap_code_name(err.code), err.msg);
		return -1;
	}
	return 0;
}

static void mount_result(const char *src, const char *dst, const struct idmap *um, const struct idmap *gm,
			 int err, const char *msg)
{
	printf("{\"version\": \"%s\", \"source\": ", IDMAPPED_MOUNT_VERSION);
	json_str(stdout, src);
	printf(", \"target\": ");
	json_str(stdout, dst);
	printf(", \"uidmap\": ");
	json_map(stdout, um);
	printf(", \"gidmap\": ");
	json_map(stdout, gm);
	printf(", \"ok\": %s, \"errno\": ", err ? "false" : "true");
	json_str(stdout, err ? errno_name(err) : NULL);
	printf(", \"message\": ");
	json_str(stdout, msg);
	printf("}\n");
	if (err)
		fprintf(stderr, "idmapped-mount: mount: %s\n", msg);
}

static int mount_main(const char *src, const char *dst, const struct idmap *um, const struct idmap *gm,
		      int recursive, int readonly)
{
	struct idm_mount_attr attr;
	char msg[512];
	int nsfd, tree, e;

	if (geteuid() != 0) {
		mount_result(src, dst, um, gm, EPERM, "must run as root (EPERM)");
		return 1;
	}
	nsfd = userns_fd_for_maps(um, gm, msg, sizeof(msg));
	if (nsfd < 0) {
		mount_result(src, dst, um, gm, errno, msg);
		return 1;
	}
	tree = sys_open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
	if (tree < 0) {
		e = errno;
		snprintf(msg, sizeof(msg), "open_tree %s: %s (%s)", src, errno_name(e), strerror(e));
		close(nsfd);
		mount_result(src, dst, um, gm, e, msg);
		return 1;
	}
	memset(&attr, 0, sizeof(attr));
	attr.attr_set = IDM_MOUNT_ATTR_IDMAP | (readonly ? IDM_MOUNT_ATTR_RDONLY : 0);
	attr.userns_fd = (uint64_t)nsfd;
	if (sys_mount_setattr(tree, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof(attr)) < 0) {
		e = errno;
		snprintf(msg, sizeof(msg), "mount_setattr(MOUNT_ATTR_IDMAP) on %s: %s (%s)", src, errno_name(e), strerror(e));
		goto fail;
	}
	if (sys_move_mount(tree, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
		e = errno;
		snprintf(msg, sizeof(msg), "move_mount to %s: %s (%s)", dst, errno_name(e), strerror(e));
		goto fail;
	}
	close(tree);
	close(nsfd);
	mount_result(src, dst, um, gm, 0, "idmapped bind mount created");
	return 0;
fail:
	close(tree);
	close(nsfd);
	mount_result(src, dst, um, gm, e, msg);
	return 1;
}

int main(int argc, char **argv)
{
	static struct idmap um, gm;
	const char *uspec = NULL, *gspec = NULL, *pos[2] = {NULL, NULL};
	int npos = 0, recursive = 0, readonly = 0, i, is_probe, timeout_s = 60;

	if (argc < 2)
		return usage_error("%s", "missing command");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("idmapped-mount %s\n", IDMAPPED_MOUNT_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "probe") && strcmp(argv[1], "mount"))
		return usage_error("unknown command '%s'", argv[1]);
	is_probe = !strcmp(argv[1], "probe");
	for (i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--uidmap") || !strcmp(a, "--gidmap")) {
			if (i + 1 >= argc)
				return usage_error("%s needs a value", a);
			if (a[2] == 'u')
				uspec = argv[++i];
			else
				gspec = argv[++i];
		} else if (!strncmp(a, "--uidmap=", 9)) {
			uspec = a + 9;
		} else if (!strncmp(a, "--gidmap=", 9)) {
			gspec = a + 9;
		} else if (is_probe && !strcmp(a, "--timeout")) {
			char *end;
			long v;
			if (i + 1 >= argc)
				return usage_error("%s needs a value", a);
			v = strtol(argv[++i], &end, 10);
			if (*argv[i] == '\0' || *end != '\0' || v < 1 || v > 3600)
				return usage_error("--timeout '%s': expected 1..3600 seconds", argv[i]);
			timeout_s = (int)v;
		} else if (!is_probe && !strcmp(a, "--recursive")) {
			recursive = 1;
		} else if (!is_probe && !strcmp(a, "--read-only")) {
			readonly = 1;
		} else if (!strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--")) {
			for (i++; i < argc; i++) {
				if (npos >= 2)
					return usage_error("unexpected argument '%s'", argv[i]);
				pos[npos++] = argv[i];
			}
		} else if (a[0] == '-' && a[1] != '\0') {
			return usage_error("unknown option '%s'", a);
		} else {
			if (npos >= 2)
				return usage_error("unexpected argument '%s'", a);
			pos[npos++] = a;
		}
	}
	if (is_probe) {
		if (npos != 1)
			return usage_error("%s", "probe takes exactly one DIR");
		if (!uspec)
			uspec = DEFAULT_MAP;
		if (!gspec)
			gspec = DEFAULT_MAP;
	} else {
		if (npos != 2)
			return usage_error("%s", "mount takes SOURCE and TARGET");
		if (!uspec || !gspec)
			return usage_error("%s", "mount needs --uidmap and --gidmap");
	}
	if (parse_map_arg("--uidmap", uspec, &um) < 0 || parse_map_arg("--gidmap", gspec, &gm) < 0)
		return 2;
	if (is_probe)
		return probe_main(pos[0], &um, &gm, timeout_s * 1000);
	return mount_main(pos[0], pos[1], &um, &gm, recursive, readonly);
}
