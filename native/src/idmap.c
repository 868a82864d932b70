/* See idmap.h. The order of the checks matches plugins/module_utils/idmap.py exactly, so
 * the two parsers give the same error code for any input (tested differentially). */
#include "idmap.h"

#include <stdio.h>
#include <string.h>

static const char *const code_names[] = {
	[IDMAP_OK] = "ok",
	[IDMAP_EMPTY] = "empty",
	[IDMAP_SYNTAX] = "syntax",
	[IDMAP_NEGATIVE] = "negative",
	[IDMAP_ZERO_SIZE] = "zero_size",
	[IDMAP_OVERFLOW] = "overflow",
	[IDMAP_OVERLAP_CONTAINER] = "overlap_container",
	[IDMAP_OVERLAP_HOST] = "overlap_host",
	[IDMAP_TOO_MANY] = "too_many",
	[IDMAP_TOO_LONG] = "too_long",
};

const char *idmap_code_name(int code)
{
	if (code < 0 || (size_t)code >= sizeof(code_names) / sizeof(code_names[0]))
		return "unknown";
	return code_names[code];
}

/* Where each extent's text lies in the spec, for messages. One more than the maximum so
 * that "too many" can name the first extent beyond it. */
struct spans {
	size_t off[IDMAP_MAX_EXTENTS + 1];
	size_t len[IDMAP_MAX_EXTENTS + 1];
};

/* Show at most this much of an extent in a message (a spec may be huge). */
#define SHOW_MAX 64

static int fail(struct idmap_error *err, int code, const char *spec, size_t off, size_t len,
		const char *what)
{
	char shown[SHOW_MAX * 4 + 4];
	size_t i, o = 0;

	err->code = code;
	err->extent_off = off;
	err->extent_len = len;
	/* Non-printable bytes are shown as \xHH so the message stays one clean line. */
	for (i = 0; i < len && i < SHOW_MAX; i++) {
		unsigned char c = (unsigned char)spec[off + i];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			shown[o++] = (char)c;
		} else {
			snprintf(shown + o, sizeof(shown) - o, "\\x%02x", c);
			o += 4;
		}
	}
	if (len > SHOW_MAX) {
		memcpy(shown + o, "...", 3);
		o += 3;
	}
	shown[o] = '\0';
	if (code == IDMAP_EMPTY)
		snprintf(err->msg, sizeof(err->msg), "empty ID map");
	else
		snprintf(err->msg, sizeof(err->msg), "extent '%s': %s", shown, what);
	return code;
}

/* One decimal part of an extent: same order of checks as _parse_part() in idmap.py. */
static int parse_part(const char *p, size_t n, uint32_t *out, const char **why)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0) {
		*why = "empty part";
		return IDMAP_SYNTAX;
	}
	if (p[0] == '-') {
		*why = "negative id";
		return IDMAP_NEGATIVE;
	}
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9') {
			*why = "not a decimal number";
			return IDMAP_SYNTAX;
		}
	}
	for (i = 0; i < n; i++) {
		v = v * 10 + (uint64_t)(p[i] - '0');
		if (v > IDMAP_ID_LIMIT) {
			*why = "number does not fit in 32 bits";
			return IDMAP_OVERFLOW;
		}
	}
	*out = (uint32_t)v;
	return IDMAP_OK;
}

static int decimal_len(uint32_t v)
{
	int n = 1;
	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

int idmap_parse(const char *spec, size_t len, struct idmap *map, struct idmap_error *err)
{
	static const char *const part_names[3] = {"container id", "host id", "size"};
	struct spans sp;
	size_t start = 0, count = 0, text_len = 0, i, j;
	char what[128];

	map->n = 0;
	memset(err, 0, sizeof(*err));
	if (len == 0)
		return fail(err, IDMAP_EMPTY, spec, 0, 0, "");

	/* Pass 1: split and parse each extent, stopping after one beyond the maximum. */
	while (count <= IDMAP_MAX_EXTENTS) {
		const char *e = spec + start;
		const char *comma = memchr(e, ',', len - start);
		size_t elen = comma ? (size_t)(comma - e) : len - start;
		size_t pstart = 0, nparts = 0;
		uint32_t vals[3] = {0, 0, 0};

		sp.off[count] = start;
		sp.len[count] = elen;
		/* Count the colons first: a wrong number of parts is reported before bad digits. */
		for (i = 0; i < elen; i++)
			if (e[i] == ':')
				nparts++;
		if (nparts != 2)
			return fail(err, IDMAP_SYNTAX, spec, start, elen, "expected container:host:size");
		for (j = 0; j < 3; j++) {
			const char *colon = memchr(e + pstart, ':', elen - pstart);
			size_t plen = colon ? (size_t)(colon - (e + pstart)) : elen - pstart;
			const char *why = "";
			int rc = parse_part(e + pstart, plen, &vals[j], &why);
			if (rc != IDMAP_OK) {
				snprintf(what, sizeof(what), "%s: %s", part_names[j], why);
				return fail(err, rc, spec, start, elen, what);
			}
			pstart += plen + 1;
		}
		if (count < IDMAP_MAX_EXTENTS) {
			map->ext[count].container = vals[0];
			map->ext[count].host = vals[1];
			map->ext[count].size = vals[2];
		}
		count++;
		if (!comma)
			break;
		start += elen + 1;
	}

	/* Pass 2: the rules that look at whole extents, in idmap.py's _check_extents() order. */
	if (count > IDMAP_MAX_EXTENTS) {
		snprintf(what, sizeof(what), "more than %d extents", IDMAP_MAX_EXTENTS);
		return fail(err, IDMAP_TOO_MANY, spec, sp.off[IDMAP_MAX_EXTENTS], sp.len[IDMAP_MAX_EXTENTS], what);
	}
	for (i = 0; i < count; i++) {
		const struct idmap_extent *x = &map->ext[i];
		if (x->size == 0)
			return fail(err, IDMAP_ZERO_SIZE, spec, sp.off[i], sp.len[i], "size is 0");
		if ((uint64_t)x->container + x->size > IDMAP_ID_LIMIT)
			return fail(err, IDMAP_OVERFLOW, spec, sp.off[i], sp.len[i],
				    "container range overflows 32 bits");
		if ((uint64_t)x->host + x->size > IDMAP_ID_LIMIT)
			return fail(err, IDMAP_OVERFLOW, spec, sp.off[i], sp.len[i],
				    "host range overflows 32 bits");
		for (j = 0; j < i; j++) {
			const struct idmap_extent *y = &map->ext[j];
			if ((uint64_t)x->container < (uint64_t)y->container + y->size &&
			    (uint64_t)y->container < (uint64_t)x->container + x->size)
				return fail(err, IDMAP_OVERLAP_CONTAINER, spec, sp.off[i], sp.len[i],
					    "container range overlaps an earlier extent");
			if ((uint64_t)x->host < (uint64_t)y->host + y->size &&
			    (uint64_t)y->host < (uint64_t)x->host + x->size)
				return fail(err, IDMAP_OVERLAP_HOST, spec, sp.off[i], sp.len[i],
					    "host range overlaps an earlier extent");
		}
		text_len += (size_t)decimal_len(x->container) + 1 + (size_t)decimal_len(x->host) + 1 +
			    (size_t)decimal_len(x->size) + 1;
		if (text_len > IDMAP_MAX_TEXT) {
			snprintf(what, sizeof(what), "uid_map text would be longer than %d bytes", IDMAP_MAX_TEXT);
			return fail(err, IDMAP_TOO_LONG, spec, sp.off[i], sp.len[i], what);
		}
	}
	map->n = count;
	return IDMAP_OK;
}

int idmap_proc_text(const struct idmap *map, char *buf, size_t buflen)
{
	size_t i, o = 0;

	for (i = 0; i < map->n; i++) {
		int w = snprintf(buf + o, buflen - o, "%u %u %u\n", map->ext[i].container,
				 map->ext[i].host, map->ext[i].size);
		if (w < 0 || (size_t)w >= buflen - o)
			return -1;
		o += (size_t)w;
	}
	if (o >= buflen)
		return -1;
	buf[o] = '\0';
	return (int)o;
}

int idmap_to_host(const struct idmap *map, uint32_t container, uint32_t *host)
{
	size_t i;

	for (i = 0; i < map->n; i++) {
		const struct idmap_extent *x = &map->ext[i];
		if (container >= x->container && (uint64_t)container < (uint64_t)x->container + x->size) {
			*host = x->host + (container - x->container);
			return 1;
		}
	}
	return 0;
}
