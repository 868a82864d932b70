"""Offline stand-in for the get-pip script that ansible-test downloads.

ansible-test bootstraps pip in each of its virtual environments with a get-pip script fetched
from a host that this network cannot reach; it uses ~/.ansible/test/cache/get_pip_<version>.py
when that file exists. This stand-in does the same job with what Python ships: ensurepip, then
pip installs the pinned packages ansible-test asked for from the configured package index.
"""
import ensurepip
import os
import subprocess
import sys


def main() -> int:
    ensurepip.bootstrap(upgrade=True)
    # ensurepip points PIP_CONFIG_FILE at /dev/null while it runs and leaves it set; that would
    # hide this machine's pip configuration (index URL, certificate) from the real install.
    os.environ.pop("PIP_CONFIG_FILE", None)
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    return subprocess.call([sys.executable, "-m", "pip", "install"] + args)


if __name__ == "__main__":
    sys.exit(main())
