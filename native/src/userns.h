#ifndef USERNS_H
#define USERNS_H

#include <stddef.h>
#include "idmap.h"

/* A user namespace whose uid_map/gid_map are the given maps, as an O_CLOEXEC fd (what
 * MOUNT_ATTR_IDMAP takes). Returns the fd, or -1 with errno set and a message in msg.
 * The helper process that holds the namespace while its maps are written is killed and
 * reaped before this returns, on every path. */
int userns_fd_for_maps(const struct idmap *uidmap, const struct idmap *gidmap, char *msg, size_t msglen);

#endif
