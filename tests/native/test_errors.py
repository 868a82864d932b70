"""errno names (native/src/errors.c): the table glibc < 2.32 builds use agrees with glibc's own
strerrorname_np, and a build against an old glibc (NATIVE_BUILD from glibc_buildroot.py, which
writes glibc-version) uses the table and names every errno the same."""
import ctypes
import subprocess

import pytest

from conftest import BUILD


def glibc_names():
    """number -> name from this machine's glibc (>= 2.32), as errno_name prints them."""
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "strerrorname_np"):
        pytest.skip("this machine's glibc has no strerrorname_np to compare with")
    libc.strerrorname_np.restype = ctypes.c_char_p
    names = {}
    for number in range(1, 256):
        name = libc.strerrorname_np(number)
        names[number] = name.decode() if name else "E%d" % number
    return names


def printed(binary):
    path = BUILD / binary
    assert path.is_file(), "build it first: make -C native test-bins"
    out = subprocess.run([str(path)], capture_output=True, text=True, check=True, timeout=30).stdout.splitlines()
    source = out[0].split()[1]
    return source, {int(n): name for n, name in (line.split() for line in out[1:])}


def test_the_table_names_every_errno_as_glibc_does():
    source, names = printed("errno-names-table")
    assert source == "table"
    assert names == glibc_names()
    assert names[28] == "ENOSPC" and names[11] == "EAGAIN" and names[250] == "E250"


def test_the_helper_build_names_every_errno_as_glibc_does():
    source, names = printed("errno-names")
    assert names == glibc_names()
    version_file = BUILD / "glibc-version"
    if version_file.is_file():
        major, minor = (int(x) for x in version_file.read_text().split(".")[:2])
        # built against an old glibc: it must have taken the fallback, not failed or guessed
        assert source == ("table" if (major, minor) < (2, 32) else "strerrorname_np")


def test_helper_binary_runs(helper):
    out = subprocess.run([str(helper), "--version"], capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0 and out.stdout.strip()
    if (BUILD / "glibc-version").is_file():
        print("helper built against glibc", (BUILD / "glibc-version").read_text().strip(), ":", out.stdout.strip())
