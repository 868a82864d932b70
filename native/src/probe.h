#ifndef PROBE_H
#define PROBE_H

#include <stdio.h>
#include "idmap.h"

/* Run `probe` on dir and print its JSON on stdout. Returns the exit status (0 ran, 1 could not run). */
/* timeout_ms: how long the checks may take before the worker is killed and the probe reports
 * ETIMEDOUT (a hung filesystem must not hang the caller). */
int probe_main(const char *dir, const struct idmap *uidmap, const struct idmap *gidmap, int timeout_ms);

#endif
