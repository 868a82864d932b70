# -*- coding: utf-8 -*-
# Copyright: idmapguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The on-host copy-cache guard: an application on top of the store library (store/) and
podman_host (to find the store when guard.json names none); never the module backends.

* ``settings``: its parameter file (the store's location whole, the copies to spare, the cache's own);
* ``lock_watch``: notices store changes from c/storage's last-write tokens, without Podman;
* ``guard_state``: last use and size of each copy, and the state ``idmap_support`` reports;
* ``service``: one pass (observe, account, evict) and the watch loop; ``cli``: the entry point;
* ``manual_prune``: the one-shot ``idmapguard-prune`` command (report, check, prune now).
"""
