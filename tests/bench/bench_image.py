"""The image a benchmark copies, chosen on its command line, and what one copy of it costs.

``--image userland`` (the default): the seed-size image of a real Debian userland
(tests/lab/userland_image.py, ``--entries`` tar members, ~6,900 like the seed's almalinux:8
copy). ``--image filler``: the busybox image with ``--files`` tiny files (tests/lab/image.py),
the figures of earlier rounds. Benches size their lab stores from ``copy_cost``.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from tests.lab import userland_image  # noqa: E402

# What a copy holds beside the image's entries: layer dir, diff/work/link/lower, l/ link, tar-split.
COPY_OVERHEAD_INODES = 40
BLOCK = 4096


def add_arguments(parser, files_default=2000):
    parser.add_argument("--image", choices=("userland", "filler"), default="userland",
                        help="userland: the seed-size real-userland image (default); filler: busybox + --files files")
    parser.add_argument("--entries", type=int, default=userland_image.DEFAULT_ENTRIES,
                        help="--image userland: entries of the image (default %(default)s)")
    parser.add_argument("--files", type=int, default=files_default, help="--image filler: files of the image")


def load(host, args):
    """Put the chosen image into HOST's Podman; return its tag."""
    if args.image == "userland":
        return host.userland_image(entries=args.entries)
    return host.image(files=args.files)


def copy_cost(args):
    """(inodes, bytes) one copy of the chosen image takes on an ext4 store (bytes rounded up
    per file to 4 KiB blocks)."""
    if args.image == "userland":
        info = userland_image.describe(args.entries)
        inodes = int(info["entries"]) - int(info["hardlinks"]) + COPY_OVERHEAD_INODES
        return inodes, int(info["bytes"]) + inodes * BLOCK
    inodes = args.files + COPY_OVERHEAD_INODES
    return inodes, inodes * BLOCK


def describe(args):
    """One line naming the image, for the bench's header."""
    if args.image == "userland":
        return "seed-size userland image: " + userland_image.describe_line(userland_image.describe(args.entries))
    return "filler image: busybox + %d files" % args.files


def loadavg():
    """This machine's /proc/loadavg (1, 5, 15 min, runnable/all, last pid): printed at the start
    and end of every run, since the lab shares 2 cores with other users."""
    with open("/proc/loadavg") as handle:
        return handle.read().strip()
