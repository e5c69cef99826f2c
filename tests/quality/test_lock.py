"""The Python dependency lock: requirements/*.txt pins every package the Makefile's venvs install.

`make lock` compiles pyproject.toml's dependency groups into requirements/*.txt (transitive packages
included, each with its hashes); `make venv` and `make demo-venv` install from those files only. These
tests check the locks themselves, that they still hold what pyproject.toml declares, and that the venvs
hold exactly what the locks say: not one package more, none at another version.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.quality

REQUIREMENTS = REPO / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def normalize(name: str) -> str:
    """PEP 503 name normalization (pip freeze and the locks may spell a name differently)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(path: Path) -> dict:
    """name -> (version, number of hashes) for every requirement of a hashed lock file."""
    pins, current = {}, None
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = PIN.match(line)
        if match:
            current = normalize(match.group(1))
            assert current not in pins, "%s pins %s twice" % (path.name, current)
            pins[current] = [match.group(2), 0]
        elif stripped.startswith("--hash=sha256:") and current:
            pins[current][1] += 1
        elif not stripped.startswith("--hash="):
            pytest.fail("%s: not a pinned, hashed requirement: %r" % (path.name, line), pytrace=False)
    return {name: tuple(value) for name, value in pins.items()}


def versions(lock: dict) -> dict:
    return {name: version for name, (version, _hashes) in lock.items()}


def freeze(python: Path) -> dict:
    """name -> version of everything installed in python's environment, pip and setuptools included."""
    proc = subprocess.run([str(python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    found = {}
    for line in proc.stdout.splitlines():
        match = PIN.match(line)
        assert match, "pip freeze lists a package that is not name==version (installed from a path?): %r" % line
        found[normalize(match.group(1))] = match.group(2)
    return found


def declared(group: str) -> dict:
    """name -> version of the pins a pyproject.toml dependency group declares, include-groups followed."""
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["dependency-groups"]
    pins = {}
    for entry in groups[group]:
        if isinstance(entry, dict):
            pins.update(declared(entry["include-group"]))
            continue
        match = re.match(r"^([A-Za-z0-9._-]+)==(\S+)$", entry)
        assert match, "pyproject.toml group %s: %r is not pinned with ==" % (group, entry)
        pins[normalize(match.group(1))] = match.group(2)
    return pins


@pytest.mark.parametrize("name", ["pip", "lock-tools", "demo", "test"])
def test_every_locked_package_is_pinned_with_hashes(name):
    lock = parse_lock(REQUIREMENTS / ("%s.txt" % name))
    assert lock, "requirements/%s.txt pins nothing" % name
    unhashed = sorted(pkg for pkg, (_version, hashes) in lock.items() if hashes == 0)
    assert not unhashed, "requirements/%s.txt: no hash for %s" % (name, unhashed)


@pytest.mark.parametrize("group", ["demo", "test"])
def test_the_lock_holds_what_pyproject_declares(group):
    """A pin changed in pyproject.toml without `make lock` fails here, naming the package."""
    locked = versions(parse_lock(REQUIREMENTS / ("%s.txt" % group)))
    stale = {name: (version, locked.get(name)) for name, version in declared(group).items() if locked.get(name) != version}
    assert not stale, "requirements/%s.txt is stale, run `make lock` (declared, locked): %s" % (group, stale)


def test_the_demo_runs_exactly_the_versions_the_tests_run():
    demo, test = versions(parse_lock(REQUIREMENTS / "demo.txt")), versions(parse_lock(REQUIREMENTS / "test.txt"))
    assert {name: (version, test.get(name)) for name, version in demo.items() if test.get(name) != version} == {}


def test_the_test_venv_is_exactly_the_lock():
    """This very interpreter's venv (.venv, which `make test` runs pytest from) against pip.txt + test.txt."""
    assert sys.prefix != sys.base_prefix, "pytest does not run in a venv: %s" % sys.prefix
    expected = {**versions(parse_lock(REQUIREMENTS / "pip.txt")), **versions(parse_lock(REQUIREMENTS / "test.txt"))}
    assert freeze(Path(sys.executable)) == expected


def test_make_demo_venv_installs_only_the_demo_lock():
    """`make demo` needs ansible-core and its dependencies only, not the test toolchain."""
    proc = subprocess.run(["make", "-C", str(REPO), "demo-venv"], capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    expected = {**versions(parse_lock(REQUIREMENTS / "pip.txt")), **versions(parse_lock(REQUIREMENTS / "demo.txt"))}
    assert freeze(REPO / ".venv-demo" / "bin" / "python") == expected
    assert "molecule" not in expected and "ansible-lint" not in expected


def test_the_makefile_installs_python_packages_from_the_locks_only():
    makefile = (REPO / "Makefile").read_text()
    flags = re.search(r"^PIP_INSTALL = (.*)$", makefile, re.M).group(1)
    assert "--require-hashes" in flags and "--no-deps" in flags, flags
    others = [line for line in makefile.splitlines() if "pip install" in line and not line.startswith("PIP_INSTALL = ")]
    assert not others, "pip install without the lock's flags: %s" % others
    sources = re.findall(r"\$\(PIP_INSTALL\) (\S+ \S+)", makefile)
    assert sources and all(re.fullmatch(r"-r (requirements/[\w-]+\.txt|\$\(2\))", src) for src in sources), sources
    venvs = re.findall(r"^\t\$\(call locked_venv,[^,]+,([^)]+)\)", makefile, re.M)
    assert venvs and all(re.fullmatch(r"requirements/[\w-]+\.txt", lock) for lock in venvs), venvs


def test_requires_ansible_is_the_minor_ci_tests():
    """meta/runtime.yml promises exactly the ansible-core minor that the locked test venv runs."""
    import yaml
    spec = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"]
    locked = versions(parse_lock(REQUIREMENTS / "test.txt"))["ansible-core"]
    major, minor = (int(part) for part in locked.split(".")[:2])
    assert spec == ">=%d.%d.0,<%d.%d.0" % (major, minor, major, minor + 1), (spec, locked)
