/* Minimal JSON writer onto a stdio stream. */
#ifndef JSON_H
#define JSON_H

#include <stdio.h>
#include <stddef.h>

#include "idmap.h"

/* Write s[0..len) as a JSON string. Valid UTF-8 passes through; control characters, '"'
 * and '\\' are escaped; a byte that is not part of valid UTF-8 (paths are bytes) becomes
 * \udcXX, the "surrogateescape" form that Python's json + os.fsencode turn back into
 * the same byte. */
void json_strn(FILE *f, const char *s, size_t len);
void json_str(FILE *f, const char *s); /* NULL -> null */
/* A map as [[container, host, size], ...]. */
void json_map(FILE *f, const struct idmap *map);

#endif
