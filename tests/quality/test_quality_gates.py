"""Collection quality gates: each test runs one real tool and fails with its output.

The tools see the files git would ship (tracked plus untracked-but-not-ignored), copied to
``<tmp>/ansible_collections/virthooks/libvirt`` so ansible-test and ansible-doc find the collection
where they expect it and nothing is written into the repository. The galaxy gates build from the
repository itself, as a release would. See tests/quality/README.md for what each gate covers.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.quality

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NAMESPACE, NAME = "virthooks", "libvirt"
FQCN = NAMESPACE + "." + NAME
# Managed-host Pythons the collection supports; the gates use every one that is installed.
SUPPORTED_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
# Reused between runs, never required: ansible-test's per-test virtual environments and pip cache.
CACHE = Path(os.environ.get("VIRTHOOKS_QUALITY_CACHE", str(REPO / ".cache" / "quality")))
# Sanity tests allowed to be skipped for a reason other than "No tests applicable." (nothing of
# theirs in the collection, e.g. pslint without PowerShell files), each with the reason (also in
# README.md here). None today: every sanity test that has files to check runs.
ALLOWED_SANITY_SKIPS: dict = {}
NOTHING_TO_CHECK = "skipped: No tests applicable."
# What must never end up in the Galaxy artifact.
FORBIDDEN_IN_ARTIFACT = re.compile(
    r"(^|/)(__pycache__|\.git|\.venv|\.cache|\.pytest_cache|\.ruff_cache|\.ansible|\.tox)(/|$)"
    r"|^tests/output(/|$)|^benchmarks/results(/|$)|^build(/|$)|^collections(/|$)|\.pyc$|\.tar\.gz$"
)
SUBPROCESS_TIMEOUT = 900


def run(cmd: list, cwd: Path, env: dict | None = None, timeout: int = SUBPROCESS_TIMEOUT) -> subprocess.CompletedProcess:
    """Run a command, capturing stdout and stderr apart.

    What a gate parses or requires to be silent is the tool's stdout only: stderr may carry any warning
    (a dependency's DeprecationWarning at import, say) without breaking a gate. Messages show both.
    """
    return subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def output(proc: subprocess.CompletedProcess) -> str:
    """Everything the tool printed, for messages and for searching its own diagnostics."""
    return proc.stdout + ("\n[stderr]\n" + proc.stderr if proc.stderr else "")


def assert_ok(proc: subprocess.CompletedProcess, what: str) -> None:
    """Fail with the tool's own output when it did not exit 0."""
    if proc.returncode != 0:
        pytest.fail("%s failed (exit %d): %s\n%s" % (what, proc.returncode, " ".join(proc.args), output(proc)),
                    pytrace=False)


def system_path() -> str:
    """PATH without pyenv shims, which claim every pythonX.Y and then refuse to run most."""
    return os.pathsep.join(p for p in os.environ.get("PATH", os.defpath).split(os.pathsep)
                           if p and "/.pyenv/shims" not in p)


def tool_env(**extra: str) -> dict:
    """Environment for the tools: our venv first, no user ansible.cfg, no colours."""
    env = dict(os.environ)
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS", "PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)
    env.update(PATH=str(VENV_BIN) + os.pathsep + system_path(), ANSIBLE_NOCOLOR="1", NO_COLOR="1",
               ANSIBLE_FORCE_COLOR="0", PY_COLORS="0")
    env.update(extra)
    return env


def shipped_files() -> list:
    """Repository files git would ship: tracked or untracked-but-not-ignored, and present."""
    proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                          cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        pytest.fail("git ls-files failed; the quality gates need a git checkout:\n" + proc.stderr.decode(),
                    pytrace=False)
    names = sorted(set(proc.stdout.decode().split("\0")) - {""})
    return [n for n in names if os.path.lexists(REPO / n)]


@pytest.fixture(scope="session")
def private_tmp():
    """A session temp dir outside pytest's basetemp.

    Concurrent pytest sessions of the same user prune each other's old basetemp directories,
    which would remove the copied tree or the installed artifact while these gates use them.
    """
    with tempfile.TemporaryDirectory(prefix="virthooks-quality-") as path:
        yield Path(path)


def find_python(version: str) -> str | None:
    """A working interpreter for X.Y: pyenv's, then the usual system places."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/%s.*/bin/python%s" % (version, version))))
    candidates += ["/usr/local/bin/python" + version, "/usr/bin/python" + version]
    for path in candidates:
        if os.access(path, os.X_OK):
            proc = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False)
            if proc.returncode == 0 and proc.stdout.strip() == version:
                return path
    return None


@pytest.fixture(scope="session")
def collection_tree(private_tmp) -> Path:
    """The shipped files at <tmp>/ansible_collections/virthooks/libvirt (a copy: no symlink to the repo)."""
    root = private_tmp / "tree" / "ansible_collections" / NAMESPACE / NAME
    for name in shipped_files():
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(str(REPO / name), str(dest), follow_symlinks=False)
    return root


@pytest.fixture(scope="session")
def collections_root(collection_tree: Path) -> Path:
    """The directory holding ansible_collections/ for the copied tree."""
    return collection_tree.parents[2]


@pytest.fixture(scope="session")
def host_pythons() -> dict:
    """Supported Python versions installed here, version -> interpreter path."""
    found = {v: find_python(v) for v in SUPPORTED_PYTHONS}
    return {v: p for v, p in found.items() if p}


@pytest.fixture(scope="session")
def ansible_test_env(private_tmp, host_pythons: dict) -> dict:
    """Environment in which ansible-test can build its sanity venvs without ci-files.testing.ansible.com.

    HOME points into the cache so ansible-test's venvs (~/.ansible/test/venv) survive between runs;
    its get-pip bootstrap is replaced by get_pip_offline.py (ensurepip, then pip from the index).
    """
    home = CACHE / "ansible-test-home"
    bootstrap_dir = home / ".ansible" / "test" / "cache"
    bootstrap_dir.mkdir(parents=True, exist_ok=True)
    for pip_version in ansible_test_pip_versions():
        shutil.copyfile(str(Path(__file__).with_name("get_pip_offline.py")),
                        str(bootstrap_dir / ("get_pip_%s.py" % pip_version.replace(".", "_"))))
    pybin = private_tmp / "pythons"
    pybin.mkdir()
    for version, path in host_pythons.items():
        (pybin / ("python" + version)).symlink_to(path)
    env = tool_env(HOME=str(home))
    env["PATH"] = os.pathsep.join([str(VENV_BIN), str(pybin), system_path()])
    return env


def ansible_test_pip_versions() -> list:
    """The pip version(s) ansible-test bootstraps into its venvs (from its own source)."""
    import ansible_test

    source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    versions = sorted(set(re.findall(r"pip='([0-9.]+)'", source.read_text())))
    assert versions, "cannot find the pip version ansible-test bootstraps in %s" % source
    return versions


def controller_version() -> str:
    return "%d.%d" % sys.version_info[:2]


def junit_results(tree: Path, pattern: str = "*.xml") -> list:
    """(name, outcome) of every test case ansible-test wrote to tests/output/junit (files matching pattern)."""
    results = []
    for path in sorted((tree / "tests" / "output" / "junit").glob(pattern)):
        for case in ET.parse(str(path)).iter("testcase"):
            if case.find("skipped") is not None:
                outcome = "skipped: " + (case.find("skipped").get("message") or case.find("skipped").text or "")
            elif case.find("failure") is not None or case.find("error") is not None:
                outcome = "failed"
            else:
                outcome = "passed"
            results.append((case.get("classname", "") + " " + case.get("name", ""), outcome))
    return results


# ---------------------------------------------------------------------------------------------- ansible-test

def test_ansible_test_sanity_passes_on_every_installed_python(collection_tree, ansible_test_env, host_pythons):
    """ansible-test sanity: every test, controller Python plus each supported host Python found."""
    assert controller_version() in ("3.11", "3.12", "3.13"), "ansible-core 2.19's controller needs 3.11+"
    cmd = ["ansible-test", "sanity", "--color", "no", "--junit",
           "--controller", "origin:python=%s@%s" % (controller_version(), sys.executable)]
    for version, path in sorted(host_pythons.items(), key=lambda item: tuple(map(int, item[0].split(".")))):
        cmd += ["--target-python", "%s@%s" % (version, path)]
    proc = run(cmd, collection_tree, ansible_test_env)
    print("host Pythons tested:", ", ".join(sorted(host_pythons)) or "none")
    assert_ok(proc, "ansible-test sanity")
    assert junit_results(collection_tree), "ansible-test sanity wrote no results:\n" + output(proc)
    skipped = {name: outcome for name, outcome in junit_results(collection_tree)
               if outcome.startswith("skipped") and outcome != NOTHING_TO_CHECK}
    unexpected = {name: why for name, why in skipped.items()
                  if not any(name.split()[-1].startswith(t) for t in ALLOWED_SANITY_SKIPS)}
    assert not unexpected, "sanity tests skipped without a justification in ALLOWED_SANITY_SKIPS:\n%s" % (
        "\n".join("%s: %s" % kv for kv in sorted(unexpected.items())))


def test_sanity_ignore_entries_are_justified():
    """Every line of tests/sanity/ignore-*.txt carries a ``# reason``."""
    for path in sorted((REPO / "tests" / "sanity").glob("ignore-*.txt")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                assert re.search(r"\S\s+#\s*\S", line), "%s:%d has no '# justification': %s" % (path, number, line)


def test_ansible_test_units_pass(collection_tree, ansible_test_env):
    """ansible-test units on the controller Python (the unit tests themselves cover 3.9-3.13 hosts)."""
    proc = run(["ansible-test", "units", "--color", "no", "--python", controller_version(),
                "--python-interpreter", sys.executable], collection_tree, ansible_test_env)
    assert_ok(proc, "ansible-test units")
    # ansible-test exits 0 when every pytest worker crashed (e.g. a conftest that cannot be imported).
    results = junit_results(collection_tree, "*-units.xml")     # not the sanity run's, in the same tree
    failed = [name for name, outcome in results if outcome == "failed"]
    passed = [name for name, outcome in results if outcome == "passed"]
    if failed or not passed or "no tests ran" in output(proc) or "crashed" in output(proc):
        pytest.fail("ansible-test units ran %d tests, %d failed:\n%s" % (len(passed), len(failed), output(proc)),
                    pytrace=False)


# ---------------------------------------------------------------------------------------------- linters

def test_ansible_lint_production_profile(collection_tree):
    config = yaml.safe_load((collection_tree / ".ansible-lint").read_text())
    assert config.get("profile") == "production"
    proc = run(["ansible-lint", "--nocolor", "-f", "pep8", "--profile", "production"], collection_tree, tool_env())
    assert_ok(proc, "ansible-lint")


def test_yamllint(collection_tree):
    proc = run(["yamllint", "--strict", "-f", "parsable", "."], collection_tree, tool_env())
    assert_ok(proc, "yamllint")


def test_ruff_check(collection_tree):
    proc = run(["ruff", "check", "--no-cache", "--output-format", "concise", "."], collection_tree, tool_env())
    assert_ok(proc, "ruff check")


# ---------------------------------------------------------------------------------------------- docs

def plugin_docs_targets() -> list:
    """(plugin type, name) for every documented plugin in plugins/ right now."""
    targets = []
    skip_dirs = {"module_utils", "doc_fragments", "action", "plugin_utils"}
    for path in sorted((REPO / "plugins").glob("*/*.py")):
        plugin_type = path.parent.name
        if plugin_type in skip_dirs or path.name == "__init__.py":
            continue
        targets.append(("module" if plugin_type == "modules" else plugin_type, path.stem))
    return targets


def role_entry_points() -> list:
    """(role, entry point) for every role in roles/ right now (``main`` when it has no argument_specs)."""
    targets = []
    for role in sorted(p for p in (REPO / "roles").glob("*") if p.is_dir()):
        specs = role / "meta" / "argument_specs.yml"
        entry_points = ["main"]
        if specs.exists():
            entry_points = sorted((yaml.safe_load(specs.read_text()) or {}).get("argument_specs") or {}) or ["main"]
        targets += [(role.name, entry) for entry in entry_points]
    return targets


@pytest.mark.parametrize(("plugin_type", "name"), plugin_docs_targets() or [pytest.param("", "", id="none-found")])
def test_ansible_doc_renders_plugin(collections_root, plugin_type, name):
    if not name:
        pytest.fail("no documented plugin found under plugins/ (modules, filters, ...): nothing to check", pytrace=False)
    env = tool_env(ANSIBLE_COLLECTIONS_PATH=str(collections_root))
    proc = run(["ansible-doc", "-t", plugin_type, "%s.%s" % (FQCN, name)], collections_root, env)
    assert_ok(proc, "ansible-doc")
    # Ansible's own diagnostics, on either stream (a Python warning of a dependency is not one of them).
    assert "[WARNING]" not in output(proc) and "[ERROR]" not in output(proc), output(proc)


@pytest.mark.parametrize(("role", "entry_point"), role_entry_points() or [pytest.param("", "", id="none-found")])
def test_ansible_doc_renders_role_entry_point(collections_root, role, entry_point):
    if not role:
        pytest.fail("no role found under roles/: nothing to check", pytrace=False)
    env = tool_env(ANSIBLE_COLLECTIONS_PATH=str(collections_root))
    proc = run(["ansible-doc", "-t", "role", "-e", entry_point, "%s.%s" % (FQCN, role)], collections_root, env)
    assert_ok(proc, "ansible-doc")
    assert re.search(r"ENTRY POINT: \W*%s\W" % re.escape(entry_point), proc.stdout), proc.stdout
    # Ansible's own diagnostics, on either stream (a Python warning of a dependency is not one of them).
    assert "[WARNING]" not in output(proc) and "[ERROR]" not in output(proc), output(proc)


def test_antsibull_docs_lint_collection_docs(collection_tree):
    proc = run(["antsibull-docs", "lint-collection-docs", "--plugin-docs", "."], collection_tree, tool_env())
    assert_ok(proc, "antsibull-docs lint-collection-docs")
    assert not proc.stdout.strip(), proc.stdout


# ---------------------------------------------------------------------------------------------- changelog

def test_antsibull_changelog_lint(collection_tree):
    config = yaml.safe_load((collection_tree / "changelogs" / "config.yaml").read_text())
    assert config.get("use_fqcn") is True
    proc = run(["antsibull-changelog", "lint"], collection_tree, tool_env())
    assert_ok(proc, "antsibull-changelog lint")
    assert not proc.stdout.strip(), proc.stdout
    proc = run(["antsibull-changelog", "lint-changelog-yaml", "changelogs/changelog.yaml"], collection_tree, tool_env())
    assert_ok(proc, "antsibull-changelog lint-changelog-yaml")
    assert not proc.stdout.strip(), proc.stdout


def test_changelog_rst_is_what_antsibull_changelog_generates(collection_tree, private_tmp):
    """CHANGELOG.rst is generated, never edited by hand, and holds the version galaxy.yml names."""
    tree = private_tmp / "changelog-tree"
    shutil.copytree(str(collection_tree), str(tree), symlinks=True)
    proc = run(["antsibull-changelog", "generate"], tree, tool_env())
    assert_ok(proc, "antsibull-changelog generate")
    committed = (REPO / "CHANGELOG.rst").read_text()
    assert (tree / "CHANGELOG.rst").read_text() == committed, "CHANGELOG.rst is stale: run antsibull-changelog generate"
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    releases = yaml.safe_load((REPO / "changelogs" / "changelog.yaml").read_text())["releases"]
    assert version in releases and ("v%s" % version) in committed, (version, sorted(releases))


# ---------------------------------------------------------------------------------------------- galaxy artifact

@pytest.fixture(scope="session")
def artifact(private_tmp) -> Path:
    """``ansible-galaxy collection build`` of the repository itself, as a release would build it."""
    out = private_tmp / "artifact"
    proc = run(["ansible-galaxy", "collection", "build", "--output-path", out, str(REPO)], REPO, tool_env())
    assert_ok(proc, "ansible-galaxy collection build")
    built = sorted(out.glob("%s-%s-*.tar.gz" % (NAMESPACE, NAME)))
    assert len(built) == 1, output(proc)
    return built[0]


def artifact_members(path: Path) -> list:
    with tarfile.open(str(path)) as tar:
        return [m.name[2:] if m.name.startswith("./") else m.name for m in tar.getmembers() if not m.isdir()]


def test_galaxy_artifact_holds_no_caches_venvs_or_outputs(artifact):
    members = artifact_members(artifact)
    bad = [m for m in members if FORBIDDEN_IN_ARTIFACT.search(m)]
    assert not bad, "the artifact contains files that build_ignore should drop:\n" + "\n".join(bad)


def test_galaxy_artifact_holds_only_files_git_would_ship(artifact):
    extra = sorted(set(artifact_members(artifact)) - set(shipped_files()) - {"MANIFEST.json", "FILES.json"})
    assert not extra, "files in the artifact that git ignores or does not know (add them to build_ignore):\n" + "\n".join(extra)


def test_galaxy_artifact_holds_every_plugin_role_and_playbook(artifact):
    members = set(artifact_members(artifact))
    wanted = [n for n in shipped_files() if n.startswith(("plugins/", "roles/", "playbooks/", "meta/", "changelogs/"))]
    missing = sorted(set(wanted) - members)
    assert not missing, "missing from the artifact:\n" + "\n".join(missing)
    manifest = json.loads(tarfile.open(str(artifact)).extractfile("MANIFEST.json").read())
    assert manifest["collection_info"]["namespace"] == NAMESPACE and manifest["collection_info"]["name"] == NAME


def test_galaxy_artifact_keeps_the_playbook_symlink(artifact):
    """playbooks/deploy-hooks.yml (the documented path before the play took its FQCN-callable name) is a
    relative symlink to deploy_hooks.yml in the artifact too, not a second copy of the play."""
    with tarfile.open(str(artifact)) as tar:
        member = tar.getmember("playbooks/deploy-hooks.yml")
        assert member.issym() and member.linkname == "deploy_hooks.yml", (member.type, member.linkname)
        assert tar.getmember("playbooks/deploy_hooks.yml").isfile()


@pytest.fixture(scope="session")
def installed(artifact, private_tmp) -> dict:
    """The artifact installed offline into an empty collections path; env that sees only it."""
    base = private_tmp / "installed"
    base.mkdir()
    collections = base / "collections"
    proc = run(["ansible-galaxy", "collection", "install", "--offline", "--force", "-p", collections, artifact], base, tool_env())
    assert_ok(proc, "ansible-galaxy collection install")
    cfg = base / "ansible.cfg"
    cfg.write_text("[defaults]\ninterpreter_python = auto_silent\nretry_files_enabled = false\n")
    # --force: without it, a virthooks.libvirt found in ~/.ansible/collections counts as "already installed".
    assert (collections / "ansible_collections" / NAMESPACE / NAME / "MANIFEST.json").exists(), output(proc)
    env = tool_env(ANSIBLE_CONFIG=str(cfg), ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
                   ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_LOCAL_TEMP=str(base / "tmp"))
    return {"base": base, "root": collections / "ansible_collections" / NAMESPACE / NAME, "env": env,
            "artifact": artifact}


def test_installed_artifact_documents_its_modules(installed):
    proc = run(["ansible-doc", "-l", FQCN, "--json"], installed["base"], installed["env"])
    assert_ok(proc, "ansible-doc -l")
    listed = set(json.loads(proc.stdout))
    expected = {"%s.%s" % (FQCN, p.stem) for p in (installed["root"] / "plugins" / "modules").glob("*.py")}
    assert expected and expected <= listed, "modules not listed by ansible-doc: %s" % sorted(expected - listed)
    for name in sorted(expected):
        proc = run(["ansible-doc", name], installed["base"], installed["env"])
        assert_ok(proc, "ansible-doc " + name)
        assert str(installed["root"]) in proc.stdout, "ansible-doc did not read the installed copy:\n" + proc.stdout


def test_installed_artifact_runs_a_playbook(installed):
    """A one-task playbook using a module of the installed collection by FQCN."""
    play = installed["base"] / "play.yml"
    play.write_text(json.dumps([{"name": "Use the installed collection", "hosts": "localhost", "gather_facts": False,
                                 "tasks": [{"name": "Describe this host", "%s.hooks_info" % FQCN: {},
                                            "register": "info"},
                                           {"name": "Show where it ran from", "ansible.builtin.assert": {
                                               "that": ["info is not failed"]}}]}]))
    proc = run(["ansible-playbook", "-i", "localhost,", "-c", "local",
                "-e", "ansible_python_interpreter=" + sys.executable, play], installed["base"], installed["env"])
    assert_ok(proc, "ansible-playbook with the installed collection")


def installed_playbooks() -> list:
    """Playbooks in playbooks/ right now that users can call as virthooks.libvirt.<name>.

    Names that are not identifiers cannot be called by FQCN (deploy-hooks.yml, the former name of
    deploy_hooks.yml, is a symlink to it: test_galaxy_artifact_keeps_the_playbook_symlink).
    """
    return sorted(p.stem for p in (REPO / "playbooks").glob("*.y*ml") if p.stem.isidentifier())


@pytest.mark.parametrize("playbook", installed_playbooks() or [pytest.param("", id="none-found")])
def test_installed_artifact_playbook_runs_by_fqcn(installed, playbook):
    """``ansible-playbook virthooks.libvirt.<playbook> --syntax-check`` resolves from the installed copy."""
    if not playbook:
        pytest.fail("no playbook under playbooks/ has an FQCN-callable name (the README documents"
                    " virthooks.libvirt.deploy_hooks)", pytrace=False)
    proc = run(["ansible-playbook", "-i", "localhost,", "--syntax-check", "%s.%s" % (FQCN, playbook)],
               installed["base"], installed["env"])
    assert_ok(proc, "ansible-playbook %s.%s --syntax-check" % (FQCN, playbook))


def test_installed_artifact_runs_the_playbook_by_its_former_path(installed):
    """``ansible-playbook playbooks/deploy-hooks.yml`` (the symlink) still finds the play in the installed copy."""
    link = installed["root"] / "playbooks" / "deploy-hooks.yml"
    assert link.is_symlink() and os.readlink(str(link)) == "deploy_hooks.yml"
    proc = run(["ansible-playbook", "-i", "localhost,", "--syntax-check", str(link)], installed["base"], installed["env"])
    assert_ok(proc, "ansible-playbook playbooks/deploy-hooks.yml --syntax-check")


def test_user_project_with_the_installed_artifact_passes_ansible_lint_production(installed):
    """A user's project that installs the artifact and uses the role passes ``ansible-lint --profile production``.

    No rule is skipped: the project has its own .ansible-lint with the production profile and nothing else, an
    inventory that sets the role's public variables in group_vars, and a playbook that runs the role by FQCN.
    The installed collection's files are linted as ansible-lint meets them in a project (it reads the role's
    defaults and vars), which is where a role/variable prefix mismatch used to fail 23 times.
    """
    project = installed["base"] / "user-project"
    (project / "group_vars").mkdir(parents=True)
    (project / ".ansible-lint").write_text("---\nprofile: production\noffline: true\n")
    (project / "inventory.yml").write_text("---\nhypervisors:\n  hosts:\n    hv1:\n      ansible_host: 192.0.2.10\n")
    (project / "group_vars" / "hypervisors.yml").write_text(
        "---\nlibvirt_hooks_scripts:\n  - name: log-start\n    driver: qemu\n    operations: [start]\n"
        "    content: |\n      #!/bin/sh\n      logger -t virthooks \"start $1\"\n")
    (project / "site.yml").write_text(
        "---\n- name: Deploy libvirt hooks\n  hosts: hypervisors\n  become: true\n  roles:\n"
        "    - role: %s.libvirt_hooks\n" % FQCN)
    # Installed into the project, as `ansible-galaxy collection install -p collections` puts it: ansible-lint
    # then lints the collection's files as part of the project (its defaults and vars included).
    proc = run(["ansible-galaxy", "collection", "install", "--offline", "--force", "-p", project / "collections",
                installed["artifact"]], project, installed["env"])
    assert_ok(proc, "ansible-galaxy collection install into the project")
    (project / "ansible.cfg").write_text("[defaults]\ncollections_path = collections\n")
    env = {k: v for k, v in installed["env"].items() if k not in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH")}
    proc = run(["git", "init", "-q", "."], project, env)  # ansible-lint lints what a git project holds
    assert_ok(proc, "git init")
    proc = run(["ansible-lint", "--nocolor", "-f", "pep8", "--profile", "production"], project, env)
    assert_ok(proc, "ansible-lint --profile production in a user project")
    lint_config = (project / ".ansible-lint").read_text()
    assert "skip_list" not in lint_config and "warn_list" not in lint_config


def test_installed_artifact_deploys_the_sandbox_demo(installed):
    """The README's demo (examples/sandbox/demo.yml importing playbooks/), run from the installed copy."""
    root = installed["root"]
    demo, inventory = root / "examples" / "sandbox" / "demo.yml", root / "examples" / "inventory" / "sandbox.yml"
    if not (REPO / "examples" / "sandbox" / "demo.yml").exists():
        pytest.fail("examples/sandbox/demo.yml does not exist: the README's make demo needs it")
    assert demo.exists() and inventory.exists(), "the artifact lacks the demo: %s, %s" % (demo, inventory)
    proc = run(["ansible-playbook", "-i", inventory, demo], installed["base"], installed["env"])
    assert_ok(proc, "the sandbox demo from the installed artifact")
    assert re.search(r"failed=0", proc.stdout) and not re.search(r"failed=[1-9]", proc.stdout), proc.stdout
    assert "unreachable=0" in proc.stdout, proc.stdout


# ----------------------------------------------------------------------------------------- make docs

def documented_options(collections_root: Path, plugin_type: str, name: str) -> list:
    """Top-level option names of a plugin as ansible-doc reads them (doc fragments merged in)."""
    proc = run(["ansible-doc", "--json", "-t", plugin_type, "%s.%s" % (FQCN, name)], collections_root,
               tool_env(ANSIBLE_COLLECTIONS_PATH=str(collections_root)))
    assert_ok(proc, "ansible-doc --json")
    doc = json.loads(proc.stdout)["%s.%s" % (FQCN, name)]["doc"]
    return sorted(doc.get("options") or {})


def rendered_dom(page: Path):
    """The DOM headless Chromium builds from a page (scripts run), parsed back."""
    from lxml import html as lxml_html

    proc = run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
               page.parent, timeout=120)
    assert_ok(proc, "chromium --dump-dom %s" % page)
    return lxml_html.fromstring(proc.stdout)


def option_titles(dom) -> set:
    """The options as the page shows them: {anchor id: text of the option's title beside it}."""
    shown = {}
    for anchor in dom.xpath("//*[starts-with(@id, 'parameter-')]"):
        title = anchor.xpath("following-sibling::*[contains(@class, 'ansible-option-title')][1]")
        shown[anchor.get("id")] = title[0].text_content().strip() if title else None
    return shown


@pytest.fixture(scope="session")
def docs_site(collection_tree, collections_root, private_tmp) -> Path:
    """`make docs-html` (the recipe behind `make docs`) run in the copied tree, with this venv."""
    out = private_tmp / "docs"
    proc = run(["make", "--no-print-directory", "docs-html", "DOCS_DIR=%s" % out, "DOCS_BIN=%s" % VENV_BIN,
                "DOCS_COLLECTIONS=%s" % collections_root], collection_tree, tool_env())
    assert_ok(proc, "make docs-html")
    return out / "html"


def docs_pages() -> list:
    """(kind, name, entry point or None) for every plugin and every role entry point; the page is <name>_<kind>.html."""
    return ([pytest.param(kind, name, None, id="%s-%s" % (kind, name)) for kind, name in plugin_docs_targets()]
            + [pytest.param("role", role, entry, id="role-%s-%s" % (role, entry)) for role, entry in role_entry_points()])


def expected_options(collections_root: Path, kind: str, name: str, entry_point) -> dict:
    """{anchor id: title} of each top-level option the page must show (the role's from its argument_specs)."""
    if kind == "role":
        specs = yaml.safe_load((REPO / "roles" / name / "meta" / "argument_specs.yml").read_text())
        options = specs["argument_specs"][entry_point].get("options") or {}
        return {"parameter-%s--%s" % (entry_point, o): o for o in options}
    # antsibull-docs titles a filter's _input "Input" and a lookup's _terms "Terms" (their anchors keep the name)
    special = {"_input": "Input", "_terms": "Terms"}
    return {"parameter-" + o: special.get(o, o) for o in documented_options(collections_root, kind, name)}


@pytest.mark.parametrize(("kind", "name", "entry_point"), docs_pages())
def test_make_docs_renders_every_plugin_page_with_its_options(docs_site, collections_root, kind, name, entry_point):
    """Each module, filter and role page of the built site, opened in headless Chromium, shows its options."""
    page = "%s_%s.html" % (name, kind)
    expected = expected_options(collections_root, kind, name, entry_point)
    assert expected, "%s documents no options: nothing to check" % name
    path = docs_site / "collections" / NAMESPACE / NAME / page
    assert path.is_file(), "make docs built no page %s: %s" % (page, sorted(p.name for p in path.parent.glob("*")))
    dom = rendered_dom(path)
    title = " ".join(" ".join(h.text_content().split()) for h in dom.xpath("//h1"))
    assert "%s.%s" % (FQCN, name) in title, title
    shown = option_titles(dom)
    missing = {i: t for i, t in expected.items() if shown.get(i) != t}
    assert not missing, "options missing from the rendered %s: %s (shown: %s)" % (page, missing, sorted(shown))


def test_make_docs_index_links_every_plugin_page(docs_site):
    """The collection's index page, as Chromium renders it, links each plugin and role page."""
    index = docs_site / "collections" / NAMESPACE / NAME / "index.html"
    links = {a.get("href", "").split("#")[0] for a in rendered_dom(index).xpath("//a")}
    pages = {"%s_%s.html" % (p.values[1], p.values[0]) for p in docs_pages()}
    assert pages <= links, "not linked from %s: %s" % (index, sorted(pages - links))
