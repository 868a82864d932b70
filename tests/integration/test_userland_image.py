"""The seed-size real-userland image (tests/lab/userland_image.py) on every lab Podman.

Per suite: Podman imports the image whole (every entry, hard link, setuid/setgid bit, file
capability and user xattr the recipe wrote), and a copy for a non-contiguous map holds the
inodes the store library reports for it, counted independently with `find` inside the host.
What the chown copy keeps of the image (entries, hard links, setuid/setgid, the capability, user
xattrs, owners) is printed per Podman version and checked against what was measured there
(COPY_LOSSES): a change in Podman's behaviour fails the test rather than passing unseen.
"""
import json
import os

import pytest

from tests.lab import userland_image
from tests.lab.lab import STORE

import remediate_support as rs

HERE = os.path.dirname(os.path.abspath(__file__))
INSPECT_INSIDE = "/usr/local/lib/idmapguard-userland-inspect.py"
MAP = rs.noncontig_map(0)
FAR = str(userland_image.FAR_ID)
SHARES = {"sid"}  # Podman 5.8: idmapped mounts, no copy
# What the chown copy of each copying Podman does to the image, as measured (docs/lab.md):
# paths it leaves out, paths it leaves with an owner not shifted through MAP, hard links kept.
# Podman 3.0's chown walk loses errors at random (opencontainers/selinux pwalk): there the
# entries owned by 531571 may be missing (they were, in every run so far), nothing else.
COPY_BEHAVIOUR = {
    "bullseye": {"lost": "far-owned, at random", "unshifted": [], "hard_links_kept": False},
    "bookworm": {"lost": ["home/far/.profile"], "unshifted": [], "hard_links_kept": True},
    "trixie": {"lost": ["home/far/.profile"], "unshifted": ["."], "hard_links_kept": True},
}


def inspect(host, path):
    with open(os.path.join(HERE, "userland_inspect.py")) as handle:
        host.write_file(INSPECT_INSIDE, handle.read())
    return json.loads(host.exec(["python3", INSPECT_INSIDE, path], check=True).stdout)


def find_inodes(host, path):
    """Distinct inodes below PATH (itself included) as find counts them, on its filesystem only."""
    out = host.exec("find %s -xdev -printf '%%i\\n' | sort -u | wc -l" % path, check=True).stdout
    return int(out.strip())


def shifted(owner, base):
    """OWNER ("uid:gid" in the image) through MAP: 0-65535 -> base+id, 531571 -> 531571."""
    def one(value):
        value = int(value)
        return value if value == userland_image.FAR_ID else base + value
    uid, gid = owner.split(":")
    return "%d:%d" % (one(uid), one(gid))


@pytest.mark.parametrize("suite", ["bullseye", "bookworm", "trixie", "sid"])
def test_userland_image_imports_and_copies(lab_host, suite):
    info = userland_image.describe()
    host = lab_host(suite, inodes=40000, size="1200M")
    rs.install_guard(host)
    tag = host.userland_image()
    upper = host.podman("image", "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", tag,
                        check=True).stdout.strip()
    image = inspect(host, upper)
    # Imported whole: every member plus the layer's root, hard links as links.
    assert image["entries"] == info["entries"] + 1, (image["entries"], info)
    assert image["inodes"] == info["entries"] + 1 - info["hardlinks"]
    assert image["setuid"] >= info["setuid"] and image["setgid"] == info["setgid"]
    assert sorted(image["caps"]) == [userland_image.CAP_FILE]
    assert image["caps"][userland_image.CAP_FILE] == userland_image.CAP_NET_RAW_EP.hex()
    assert len(image["xattrs"]) == info["xattrs"], image["xattrs"]
    assert image["owners"].get("%s:%s" % (FAR, FAR)) == info["owners"]["%s:%s" % (FAR, FAR)]

    used_before = host.inodes_used()
    host.podman("create", "--name", "seed", "--uidmap", MAP, "--gidmap", MAP, tag, "true", check=True)
    _proc, report = rs.guard(host, "--report", "--min-age", "0")
    copies = report["copies"]
    if suite in SHARES:
        assert copies == [], copies  # idmapped mounts: no copy at all
        print("\nUSERLAND %s podman %s: image %d entries / %d inodes; no copy (shares)" % (
            suite, host.podman_version(), image["entries"], image["inodes"]))
        return
    assert len(copies) == 1 and copies[0]["in_use"], copies
    copy = copies[0]
    layer_dir = "%s/overlay/%s" % (STORE, copy["layer_id"])
    # The store library's figure, counted again with find: the layer's directory, its l/ link
    # and tar-split.
    counted = find_inodes(host, layer_dir)
    extra = host.exec("ls -d %s/overlay/l/%s %s/overlay-layers/%s.tar-split.gz 2>/dev/null | wc -l" % (
        STORE, copy["link"], STORE, copy["layer_id"]), check=True).stdout
    assert copy["inodes"] == counted + int(extra.strip()), (copy["inodes"], counted, extra)

    # The chowned tree is the layer's fullest diff* directory (diff1 next to an empty diff on
    # these Podman versions).
    subdirs = host.exec("ls %s" % layer_dir, check=True).stdout.split()
    data_dir = max((d for d in subdirs if d.startswith("diff")),
                   key=lambda d: int(host.exec("find %s/%s | wc -l" % (layer_dir, d), check=True).stdout))
    mapped = inspect(host, "%s/%s" % (layer_dir, data_dir))
    base = int(MAP.split(":")[1])
    lost = sorted(set(image["owner_of"]) - set(mapped["owner_of"]))
    unshifted = sorted(p for p, owner in mapped["owner_of"].items()
                       if p in image["owner_of"] and owner != shifted(image["owner_of"][p], base))
    seen = {"lost": lost, "unshifted": unshifted, "hard_links_kept": mapped["multi_link"] == image["multi_link"],
            "setuid": mapped["setuid"], "setgid": mapped["setgid"], "caps": mapped["caps"],
            "xattrs": sorted(mapped["xattrs"])}
    print("\nUSERLAND %s podman %s: image %d entries / %d inodes (setuid %d, setgid %d, %d multi-link files, "
          "caps %s, %d user xattrs); copy in %s: %d entries / %d inodes, library %d inodes, store fs +%d; %s" % (
              suite, host.podman_version(), image["entries"], image["inodes"], image["setuid"], image["setgid"],
              image["multi_link"], sorted(image["caps"]), len(image["xattrs"]), data_dir, mapped["entries"],
              mapped["inodes"], copy["inodes"], host.inodes_used() - used_before, json.dumps(seen, sort_keys=True)))
    expect = COPY_BEHAVIOUR[suite]
    if suite == "bullseye":
        far_owned = {p for p, owner in image["owner_of"].items() if owner == "%s:%s" % (FAR, FAR)}
        assert set(lost) <= far_owned, seen
    else:
        assert lost == expect["lost"], seen
    assert unshifted == expect["unshifted"], seen
    assert seen["hard_links_kept"] == expect["hard_links_kept"], seen
    # The expected number of inodes: one per entry the copy kept, less the image's hard links
    # where the copy keeps them as links.
    assert mapped["entries"] == image["entries"] - len(lost), seen
    links = image["entries"] - image["inodes"] if expect["hard_links_kept"] else 0
    assert mapped["inodes"] == mapped["entries"] - links, (mapped["inodes"], mapped["entries"], links)
    # Kept by every copying Podman: setuid/setgid bits, the capability (byte for byte), user xattrs.
    assert (mapped["setuid"], mapped["setgid"]) == (image["setuid"], image["setgid"]), seen
    assert mapped["caps"] == image["caps"], seen
    assert mapped["xattrs"] == image["xattrs"], seen
