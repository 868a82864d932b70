#ifndef PROBE_H
#define PROBE_H

#include <stdio.h>
#include "idmap.h"

/* Run `probe` on dir and print its JSON on stdout. Returns the exit status (0 ran, 1 could not run). */
int probe_main(const char *dir, const struct idmap *uidmap, const struct idmap *gidmap);

/* Print a map as [[container, host, size], ...]. */
void print_map_json(FILE *f, const struct idmap *map);

#endif
