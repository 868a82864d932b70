"""Boot the static idmapped-mount helper on real Debian kernels under QEMU and collect
`probe` JSON for a scratch ext4 disk and a tmpfs, read back from the serial console.

    kernel_matrix.py --helper native/build/idmapped-mount --out DIR [--suites bullseye,bookworm,trixie]

Kernels come from the configured Debian mirror (dists/SUITE/main/binary-amd64/Packages.xz:
the package linux-image-cloud-amd64 points at the current cloud kernel of the suite). Each
kernel is unpacked once into $LAB_CACHE/kernels/<package>_<version>/ (vmlinuz, the modules
the initramfs needs, modules.dep); which version a suite resolved to is remembered in
$LAB_CACHE/kernels/<suite>.json, so a warm cache needs no network at all. The initramfs
(busybox-static as init, the helper, the modules) is cached next to the kernel, keyed by a
hash of its inputs. Output: OUT/<kernel release>.json per kernel, plus OUT/matrix.json.

Host needs: qemu-system-x86_64, busybox-static, e2fsprogs (mkfs.ext4), dpkg-deb, kmod (depmod).
"""
import argparse
import fcntl
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Dict, List, Tuple

MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = os.path.join(os.environ.get("LAB_CACHE", "/var/cache/idmapguard-lab"), "kernels")
SUITES = ["bullseye", "bookworm", "trixie"]
META_PACKAGE = "linux-image-cloud-amd64"
# What the probe needs in the guest; dependencies are added from modules.dep.
WANTED_MODULES = ["virtio_pci", "virtio_blk", "ext4", "overlay"]
BUSYBOX = "/bin/busybox"
MARK = "IDMAPGUARD-PROBE"
QEMU = "/usr/bin/qemu-system-x86_64"
MKFS = "/sbin/mkfs.ext4"
DPKG_DEB = "/usr/bin/dpkg-deb"
DEPMOD = "/sbin/depmod"
BOOT_TIMEOUT = 180  # seconds, per kernel; a TCG boot takes 10-15 s


def log(msg: str) -> None:
    print("kernel-matrix: " + msg, file=sys.stderr, flush=True)


def fetch(url: str, dest: str) -> None:
    tmp = dest + ".part"
    with urllib.request.urlopen(url, timeout=120) as resp, open(tmp, "wb") as out:
        shutil.copyfileobj(resp, out, 1 << 20)
    os.replace(tmp, dest)


def parse_packages(text: str) -> Dict[str, Dict[str, str]]:
    """Debian Packages stanzas, keyed by package name (last stanza wins)."""
    pkgs: Dict[str, Dict[str, str]] = {}
    for stanza in text.split("\n\n"):
        fields: Dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _sep, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields:
            pkgs[fields["Package"]] = fields
    return pkgs


def resolve_suite(suite: str) -> Dict[str, str]:
    """The concrete kernel package for a suite: cached, or looked up in Packages.xz."""
    os.makedirs(CACHE, exist_ok=True)
    pin = os.path.join(CACHE, suite + ".json")
    if os.path.exists(pin):
        with open(pin, encoding="utf-8") as f:
            return json.load(f)
    url = "%s/dists/%s/main/binary-amd64/Packages.xz" % (MIRROR, suite)
    log("reading " + url)
    with urllib.request.urlopen(url, timeout=120) as resp:
        text = lzma.decompress(resp.read()).decode("utf-8", "replace")
    pkgs = parse_packages(text)
    meta = pkgs[META_PACKAGE]
    # Depends: linux-image-6.1.0-41-cloud-amd64 (= 6.1.158-1) | linux-image-...-unsigned
    names = re.findall(r"(linux-image-[0-9][^\s,|(]*)", meta["Depends"])
    for name in names + [n + "-unsigned" for n in names]:
        if name in pkgs:
            chosen = pkgs[name]
            break
    else:
        raise SystemExit("kernel-matrix: %s: no package for %s" % (suite, meta["Depends"]))
    info = {"suite": suite, "package": chosen["Package"], "version": chosen["Version"],
            "filename": chosen["Filename"], "sha256": chosen["SHA256"]}
    with open(pin + ".tmp", "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
    os.replace(pin + ".tmp", pin)
    return info


def kernel_dir(info: Dict[str, str]) -> str:
    return os.path.join(CACHE, "%s_%s" % (info["package"], info["version"].replace(":", "_")))


def unpack_kernel(info: Dict[str, str]) -> str:
    """Download, verify and unpack the kernel package once; keep vmlinuz and modules."""
    kdir = kernel_dir(info)
    if os.path.exists(os.path.join(kdir, "release")):
        return kdir
    work = tempfile.mkdtemp(prefix="kernel-", dir=CACHE)
    try:
        deb = os.path.join(work, "k.deb")
        log("downloading %s %s" % (info["package"], info["version"]))
        fetch("%s/%s" % (MIRROR, info["filename"]), deb)
        with open(deb, "rb") as f:
            digest = hashlib.sha256()
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != info["sha256"]:
            raise SystemExit("kernel-matrix: sha256 mismatch for " + info["filename"])
        root = os.path.join(work, "root")
        subprocess.run([DPKG_DEB, "-x", deb, root], check=True)
        moddir = os.path.join(root, "lib", "modules")
        if not os.path.isdir(moddir):
            moddir = os.path.join(root, "usr", "lib", "modules")
        (release,) = os.listdir(moddir)
        out = os.path.join(work, "out")
        os.makedirs(out)
        shutil.copy(os.path.join(root, "boot", "vmlinuz-" + release), os.path.join(out, "vmlinuz"))
        # modules.dep is made by depmod in the package's postinst, so make it here.
        shutil.copytree(os.path.join(moddir, release), os.path.join(out, "lib", "modules", release),
                        symlinks=True)
        subprocess.run([DEPMOD, "-b", out, release], check=True)
        os.symlink(os.path.join("lib", "modules", release), os.path.join(out, "modules"))
        with open(os.path.join(out, "release"), "w", encoding="utf-8") as f:
            f.write(release + "\n")
        if os.path.exists(kdir):
            shutil.rmtree(kdir)
        os.replace(out, kdir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return kdir


def module_closure(kdir: str) -> List[str]:
    """Module files (relative to modules/) for WANTED_MODULES, dependencies first."""
    moddir = os.path.join(kdir, "modules")
    deps: Dict[str, List[str]] = {}
    by_name: Dict[str, str] = {}
    with open(os.path.join(moddir, "modules.dep"), encoding="utf-8") as f:
        for line in f:
            path, _sep, rest = line.partition(":")
            deps[path] = rest.split()
            name = os.path.basename(path).split(".ko")[0].replace("-", "_")
            by_name[name] = path
    order: List[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in WANTED_MODULES:
        if name in by_name:  # absent = built in (modules.builtin) or not needed
            visit(by_name[name])
    return order


class Cpio:
    """A newc cpio archive (the initramfs format) written from Python: no shell, no cpio."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        raw = name.encode() + b"\0"
        hdr = "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X" % (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0)
        self.ino += 1
        self.buf.write(hdr.encode() + raw)
        self.buf.write(b"\0" * ((4 - (110 + len(raw)) % 4) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * ((4 - len(data) % 4) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /mnt/ext4 /mnt/tmpfs
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
for m in $(/bin/busybox cat /modules.order); do /bin/busybox insmod /lib/modules/$m 2>/dev/null; done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do /bin/busybox sleep 0.1; i=$((i+1)); done
/bin/busybox mount -t ext4 /dev/vda /mnt/ext4 || echo "{MARK}-ERROR ext4 mount failed"
/bin/busybox mount -t tmpfs tmpfs /mnt/tmpfs
for fs in ext4 tmpfs; do
  echo "{MARK}-BEGIN $fs"
  /idmapped-mount probe /mnt/$fs
  echo "{MARK}-END $fs rc=$?"
  echo "{MARK}-LEFTOVER $fs $(/bin/busybox ls -A /mnt/$fs | /bin/busybox grep -c idmapped-mount-probe)"
done
echo "{MARK}-DONE"
/bin/busybox sync
/bin/busybox poweroff -f
""".replace("{MARK}", MARK)


def build_initramfs(kdir: str, helper: str) -> str:
    with open(helper, "rb") as f:
        helper_bytes = f.read()
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    modules = module_closure(kdir)
    key = hashlib.sha256()
    for part in (helper_bytes, busybox, INIT.encode(), "\n".join(modules).encode()):
        key.update(hashlib.sha256(part).digest())
    path = os.path.join(kdir, "initramfs-%s.cpio" % key.hexdigest()[:16])
    if os.path.exists(path):
        return path
    for old in os.listdir(kdir):  # one initramfs per kernel is enough
        if old.startswith("initramfs-"):
            os.unlink(os.path.join(kdir, old))
    arc = Cpio()
    for d in ("bin", "lib", "lib/modules", "proc", "sys", "dev", "mnt"):
        arc.dir(d)
    arc.file("bin/busybox", busybox, 0o755)
    arc.file("init", INIT.encode(), 0o755)
    arc.file("idmapped-mount", helper_bytes, 0o755)
    order = []
    for rel in modules:
        with open(os.path.join(kdir, "modules", rel), "rb") as f:
            data = f.read()
        name = os.path.basename(rel)
        # busybox insmod cannot read compressed modules (trixie ships .ko.xz)
        if name.endswith(".xz"):
            data, name = lzma.decompress(data), name[:-3]
        elif name.endswith(".zst"):
            raise SystemExit("kernel-matrix: zstd-compressed modules are not supported: " + rel)
        arc.file("lib/modules/" + name, data)
        order.append(name)
    arc.file("modules.order", ("\n".join(order) + "\n").encode())
    with open(path + ".tmp", "wb") as f:
        f.write(arc.finish())
    os.replace(path + ".tmp", path)
    return path


def kvm_usable() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def boot(kdir: str, initrd: str, workdir: str, accel: str) -> str:
    disk = os.path.join(workdir, "scratch.ext4")
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run([MKFS, "-q", "-F", disk], check=True)
    serial = os.path.join(workdir, "serial.log")
    argv = [QEMU, "-machine", "q35", "-accel", accel, "-m", "512", "-smp", "1",
            "-display", "none", "-monitor", "none", "-no-reboot",
            "-serial", "file:" + serial,
            "-kernel", os.path.join(kdir, "vmlinuz"), "-initrd", initrd,
            "-append", "console=ttyS0 panic=-1 loglevel=3",
            "-drive", "file=%s,if=virtio,format=raw" % disk]
    if accel == "tcg":
        argv[argv.index("-accel") + 1] = "tcg,thread=single"
    try:
        subprocess.run(argv, check=False, timeout=BOOT_TIMEOUT, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:  # run() has killed QEMU; the console says how far it got
        log("QEMU did not power off within %ds" % BOOT_TIMEOUT)
    with open(serial, "rb") as f:
        return f.read().decode("utf-8", "replace")


def parse_serial(text: str) -> Tuple[Dict[str, dict], Dict[str, int], List[str]]:
    probes: Dict[str, dict] = {}
    rcs: Dict[str, int] = {}
    problems: List[str] = []
    for m in re.finditer(r"%s-BEGIN (\w+)\r?\n(.*?)\r?\n%s-END \1 rc=(\d+)" % (MARK, MARK), text, re.S):
        fs, body, rc = m.group(1), m.group(2), int(m.group(3))
        rcs[fs] = rc
        line = [ln for ln in body.splitlines() if ln.startswith("{")]
        if not line:
            problems.append("%s: no JSON on the console" % fs)
            continue
        probes[fs] = json.loads(line[-1])
    for m in re.finditer(r"%s-LEFTOVER (\w+) (\d+)" % MARK, text):
        if int(m.group(2)):
            problems.append("%s: the probe left its scratch dir behind" % m.group(1))
    for m in re.finditer(r"%s-ERROR (.*)" % MARK, text):
        problems.append(m.group(1).strip())
    if MARK + "-DONE" not in text:
        problems.append("the guest did not finish")
    return probes, rcs, problems


def run_one(suite: str, helper: str, out: str, accel: str) -> dict:
    info = resolve_suite(suite)
    kdir = unpack_kernel(info)
    with open(os.path.join(kdir, "release"), encoding="utf-8") as f:
        release = f.read().strip()
    initrd = build_initramfs(kdir, helper)
    work = tempfile.mkdtemp(prefix="kmatrix-")
    try:
        start = time.monotonic()
        serial = boot(kdir, initrd, work, accel)
        took = time.monotonic() - start
        probes, rcs, problems = parse_serial(serial)
        if problems or len(probes) != 2:
            tail = serial[-3000:]
            log("%s: problems %s; console tail:\n%s" % (release, problems, tail))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"suite": suite, "package": info["package"], "package_version": info["version"],
              "kernel": release, "accel": accel.split(",")[0], "probe_exit": rcs, "problems": problems,
              "probes": probes}
    with open(os.path.join(out, release + ".json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    log("%s (%s): boot+probe %.1fs, %s" % (release, suite, took, "ok" if not problems else "PROBLEMS"))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--helper", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--suites", default=",".join(SUITES))
    # TCG by default: it needs nothing from the host, and nested KVM on this kind of machine
    # was seen to hang a guest; a TCG boot takes about ten seconds anyway.
    ap.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="tcg",
                    help="tcg (software emulation, default), kvm, or auto (KVM when /dev/kvm opens)")
    args = ap.parse_args()
    accel = args.accel if args.accel != "auto" else ("kvm" if kvm_usable() else "tcg")
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(CACHE, exist_ok=True)
    # One matrix at a time per cache: runs from other checkouts share the kernels, and the
    # initramfs of one must not be replaced while another boots it.
    with open(os.path.join(CACHE, ".lock"), "w", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = [run_one(s, args.helper, args.out, accel) for s in args.suites.split(",")]
    with open(os.path.join(args.out, "matrix.json"), "w", encoding="utf-8") as f:
        json.dump({r["suite"]: r["kernel"] for r in results}, f, indent=1, sort_keys=True)
        f.write("\n")
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
