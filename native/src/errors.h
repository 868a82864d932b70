/* Errno names for messages and JSON (errors.c). */
#ifndef ERRORS_H
#define ERRORS_H

/* "ENOSPC" for ENOSPC; "E<number>" for a number without a name. Never NULL. */
const char *errno_name(int err);

/* 1 when errno_name uses the built-in table (glibc < 2.32, or built with -DIDMAPGUARD_ERRNO_TABLE). */
int errno_name_source_is_table(void);

#endif
