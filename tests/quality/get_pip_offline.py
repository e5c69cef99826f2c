"""Offline stand-in for the get-pip.py that ansible-test downloads to bootstrap pip.

ansible-test creates each sanity virtual environment without pip and then runs
``get-pip.py <pip options> pip==X.Y`` from ``~/.ansible/test/cache/get_pip_X_Y.py``,
downloading it from ci-files.testing.ansible.com when that file is missing. That host is
unreachable here, so the quality tests put this script at that path instead: it installs the
pip that the interpreter bundles (ensurepip, no network), then uses it to install the exact pip
version ansible-test asked for from the package index, like get-pip.py would.
"""
from __future__ import annotations

import subprocess
import sys

GET_PIP_ONLY_FLAGS = ("--no-setuptools", "--no-wheel")


def main() -> None:
    """Bootstrap pip with ensurepip, then install the requested packages with it."""
    args = sys.argv[1:]
    pip_args = [arg for arg in args if arg not in GET_PIP_ONLY_FLAGS]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"],
                          stdout=subprocess.DEVNULL)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet"] + pip_args)
    unwanted = [name for name in ("setuptools", "wheel") if "--no-" + name in args]
    if unwanted:
        # ensurepip on Python < 3.12 also brings setuptools; get-pip.py would not have.
        subprocess.call([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet"] + unwanted,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
