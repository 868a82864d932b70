/* ID-map parser and validator: Podman's "container:host:size[,...]" with the kernel's
 * uid_map rules. Pure (no allocation, no I/O) so the same object is linked into the helper,
 * the cffi extension and the fuzz target. Keep in step with plugins/module_utils/idmap.py;
 * both are tested against tests/vectors/idmap_specs.json. */
#ifndef IDMAP_H
#define IDMAP_H

#include <stddef.h>
#include <stdint.h>

#define IDMAP_MAX_EXTENTS 340   /* UID_GID_MAP_MAX_EXTENTS */
#define IDMAP_MAX_TEXT 4095     /* the kernel refuses a uid_map write of a page or more */
#define IDMAP_ID_LIMIT 0xFFFFFFFFu /* (uid_t)-1 is never a valid id */
#define IDMAP_MSG_MAX 320

enum idmap_code {
	IDMAP_OK = 0,
	IDMAP_EMPTY,
	IDMAP_SYNTAX,
	IDMAP_NEGATIVE,
	IDMAP_ZERO_SIZE,
	IDMAP_OVERFLOW,
	IDMAP_OVERLAP_CONTAINER,
	IDMAP_OVERLAP_HOST,
	IDMAP_TOO_MANY,
	IDMAP_TOO_LONG,
};

struct idmap_extent {
	uint32_t container;
	uint32_t host;
	uint32_t size;
};

struct idmap {
	size_t n;
	struct idmap_extent ext[IDMAP_MAX_EXTENTS];
};

struct idmap_error {
	int code;           /* enum idmap_code */
	size_t extent_off;  /* the offending extent's text within the spec */
	size_t extent_len;
	char msg[IDMAP_MSG_MAX];
};

/* Parse spec[0..len) (it may contain NUL bytes: they are a syntax error). Returns IDMAP_OK
 * and fills *map, or an error code and fills *err (message names the bad extent). */
int idmap_parse(const char *spec, size_t len, struct idmap *map, struct idmap_error *err);

/* Stable name of a code: "syntax", "overlap_host", ... (the vectors' "code"). */
const char *idmap_code_name(int code);

/* The uid_map text ("container host size\n" per extent). Returns its length, or -1 when
 * it does not fit in buf (buf is NUL-terminated when it fits). */
int idmap_proc_text(const struct idmap *map, char *buf, size_t buflen);

/* Map a container id to its host id. Returns 1 and sets *host when mapped, 0 otherwise. */
int idmap_to_host(const struct idmap *map, uint32_t container, uint32_t *host);

#endif
