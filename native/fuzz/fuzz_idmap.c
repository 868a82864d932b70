/* libFuzzer target for the ID-map parser. Besides "no crash, no sanitizer report" it checks
 * the parser's own promises, so a logic slip is a finding too:
 *   - an error names a span inside the input and a known code;
 *   - an accepted map has 1..340 extents, fits the kernel's uid_map limit, has no overlaps,
 *     and formatting it back and re-parsing gives the same map. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/idmap.h"

#define CHECK(cond)                                                                         \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
			abort();                                                            \
		}                                                                           \
	} while (0)

static struct idmap map, again;
static char text[8 * 4096], spec[8 * 4096];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct idmap_error err;
	size_t i, j, o = 0;
	int rc = idmap_parse((const char *)data, size, &map, &err);

	if (rc != IDMAP_OK) {
		CHECK(rc == err.code && rc > IDMAP_OK && rc <= IDMAP_TOO_LONG);
		CHECK(err.extent_off <= size && err.extent_len <= size - err.extent_off);
		CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
		CHECK(strcmp(idmap_code_name(rc), "unknown") != 0);
		return 0;
	}
	CHECK(map.n >= 1 && map.n <= IDMAP_MAX_EXTENTS);
	CHECK(idmap_proc_text(&map, text, sizeof(text)) >= 0);
	CHECK(strlen(text) <= IDMAP_MAX_TEXT);
	for (i = 0; i < map.n; i++) {
		uint32_t host;
		CHECK(map.ext[i].size > 0);
		CHECK((uint64_t)map.ext[i].container + map.ext[i].size <= IDMAP_ID_LIMIT);
		CHECK((uint64_t)map.ext[i].host + map.ext[i].size <= IDMAP_ID_LIMIT);
		CHECK(idmap_to_host(&map, map.ext[i].container, &host) && host == map.ext[i].host);
		for (j = 0; j < i; j++) {
			CHECK(map.ext[i].container + (uint64_t)map.ext[i].size <= map.ext[j].container ||
			      map.ext[j].container + (uint64_t)map.ext[j].size <= map.ext[i].container);
			CHECK(map.ext[i].host + (uint64_t)map.ext[i].size <= map.ext[j].host ||
			      map.ext[j].host + (uint64_t)map.ext[j].size <= map.ext[i].host);
		}
		o += (size_t)snprintf(spec + o, sizeof(spec) - o, "%s%u:%u:%u", i ? "," : "", map.ext[i].container,
				      map.ext[i].host, map.ext[i].size);
	}
	CHECK(idmap_parse(spec, o, &again, &err) == IDMAP_OK);
	CHECK(again.n == map.n && memcmp(again.ext, map.ext, map.n * sizeof(map.ext[0])) == 0);
	return 0;
}
