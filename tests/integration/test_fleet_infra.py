"""The fleet test infrastructure, for real (extensions/molecule/utils/fleet).

Builds or reuses the four podman images, starts a four-host fleet (Debian 12 libvirt 9.0, Debian 13 libvirt
11.3, libvirt 9.0 built from source under /usr/local, a Debian 12 host without libvirt), and checks through
one real ansible-playbook run over the containers.podman.podman connection that every host answers, that each
libvirtd answers with its expected version, that the source build's SYSCONFDIR is /usr/local/etc, that the
bare host has no libvirtd, and that a disk-less TCG guest can be defined, started and destroyed on every
libvirt host. Then the molecule glue (utils/playbooks/create.yml + destroy.yml) runs a small scenario, and
both fleets are destroyed. Needs root and podman: it fails (never skips) when they cannot work.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ansible import ansible_env
from tests.support.paths import COLLECTIONS, REPO

pytestmark = [pytest.mark.podman, pytest.mark.root]  # rootful podman, debootstrap, chroot

FLEET = REPO / "extensions" / "molecule" / "utils" / "fleet"
PLAYBOOKS = REPO / "extensions" / "molecule" / "utils" / "playbooks"
FLEET_COLLECTIONS = REPO / ".cache" / "collections"
VENV_BIN = Path(sys.executable).parent
SUFFIX = "%d" % os.getpid()

# host -> (image, group, expected libvirtd version or None)
HOSTS = {
    "vhf-bookworm-" + SUFFIX: ("bookworm-libvirt", "gen9", "9.0.0"),
    "vhf-trixie-" + SUFFIX: ("trixie-libvirt", "gen11", "11.3.0"),
    "vhf-srcbuild-" + SUFFIX: ("srcbuild", "gen9", "9.0.0"),
    "vhf-bare-" + SUFFIX: ("bookworm-bare", "nolibvirt", None),
}
SRCBUILD = "vhf-srcbuild-" + SUFFIX
BARE = "vhf-bare-" + SUFFIX

GUEST_XML = """<domain type='qemu'>
  <name>vhf-tiny</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><memballoon model='none'/></devices>
</domain>
"""

PLAYBOOK = """\
- name: Every fleet host answers
  hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
    - ansible.builtin.setup:
        gather_subset: [min]
    - ansible.builtin.set_fact:
        r_facts: "{{ {'distribution': ansible_facts.distribution,
                      'major': ansible_facts.distribution_major_version,
                      'python': ansible_facts.python.executable,
                      'hostname': ansible_facts.hostname} }}"

- name: libvirt hosts
  hosts: gen9:gen11
  gather_facts: false
  tasks:
    - name: Ask the daemon for its version
      ansible.builtin.command: virsh -c qemu:///system version --daemon
      register: r_version
      changed_when: false
    - name: Ask libvirtd (the one on PATH) where its configuration lives
      ansible.builtin.shell: 'p=$(command -v libvirtd); echo "$p"; "$p" --help 2>&1'
      register: r_help
      changed_when: false
    - name: Ship a disk-less TCG guest (exercises the connection's file transfer)
      ansible.builtin.copy:
        dest: /tmp/vhf-tiny.xml
        content: "{{ guest_xml }}"
        mode: "0644"
    - name: Define, start, destroy, undefine it
      ansible.builtin.shell: |
        set -e
        v="virsh -q -c qemu:///system"
        $v define /tmp/vhf-tiny.xml >/dev/null
        $v start vhf-tiny >/dev/null
        state=$($v domstate vhf-tiny)
        $v destroy vhf-tiny >/dev/null
        after=$($v domstate vhf-tiny)
        $v undefine vhf-tiny >/dev/null
        echo "$state/$after"
      register: r_guest
      changed_when: true

- name: The host without libvirt
  hosts: nolibvirt
  gather_facts: false
  tasks:
    - name: Look for any libvirtd
      ansible.builtin.shell: >-
        command -v libvirtd || ls /usr/sbin/libvirtd /usr/local/sbin/libvirtd 2>/dev/null
        || pgrep -x libvirtd || echo none
      register: r_nolibvirt
      changed_when: false

- name: Collect the results on the controller
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        dest: "{{ results_file }}"
        mode: "0644"
        content: |-
          {% set out = {} %}
          {% for h in groups['all'] %}
          {%   set mine = {} %}
          {%   for k in ['r_facts', 'r_version', 'r_help', 'r_guest', 'r_nolibvirt'] %}
          {%     if hostvars[h][k] is defined %}{% set _ = mine.update({k: hostvars[h][k]}) %}{% endif %}
          {%   endfor %}
          {%   set _ = out.update({h: mine}) %}
          {% endfor %}
          {{ out | to_json }}
"""


def _podman(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(FLEET / "podman"), *args], capture_output=True, text=True, timeout=timeout, check=False)


def _run(cmd: list, timeout: int, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False)
    print("$ %s  (%.1fs, rc=%d)" % (" ".join(map(str, cmd)), time.monotonic() - t0, proc.returncode))
    print(proc.stderr[-4000:])
    return proc


def fleet_env(**extra: str) -> dict:
    """ansible_env() plus the offline containers.podman collection."""
    return ansible_env(
        ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([str(COLLECTIONS), str(FLEET_COLLECTIONS)]),
        CONTAINERS_CONF=str(FLEET / "containers.conf"),
        **extra,
    )


def _require_podman() -> None:
    """Fail loudly (never skip) when the fleet cannot work on this machine."""
    if os.geteuid() != 0:
        pytest.fail("the fleet tests need root (rootful podman, debootstrap, chroot)")
    for tool in ("podman", "debootstrap", "unshare", "tini"):
        if not shutil.which(tool):
            pytest.fail("%s is missing: run tests/setup/prepare-host.sh (tests/setup/debian-packages.txt)" % tool)
    info = _podman("info", "--format", "{{.Host.OCIRuntime.Name}}")
    if info.returncode != 0 or info.stdout.strip() != "runc":
        pytest.fail("podman does not work here (want runtime runc):\n%s%s" % (info.stdout, info.stderr))


def _fleet_down(names: list) -> None:
    proc = _run([str(FLEET / "fleet.sh"), "down", *names], timeout=300)
    left = [n for n in names if _podman("container", "exists", n).returncode == 0]
    assert proc.returncode == 0 and not left, "fleet.sh down left %s:\n%s" % (left, proc.stderr)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """A running four-host fleet and the results of one Ansible run against it."""
    _require_podman()
    proc = _run([str(FLEET / "get-podman-collection.sh")], timeout=600, env=dict(os.environ, PYTHON=sys.executable))
    assert proc.returncode == 0, "could not provide containers.podman:\n%s%s" % (proc.stdout, proc.stderr)

    names = list(HOSTS)
    t0 = time.monotonic()
    # Builds the images on a fresh machine (a few minutes), reuses them otherwise.
    proc = _run([str(FLEET / "fleet.sh"), "up", *("%s=%s" % (n, HOSTS[n][0]) for n in names)], timeout=1800)
    try:
        assert proc.returncode == 0, "fleet.sh up failed:\n%s" % proc.stderr
        up_seconds = time.monotonic() - t0

        work = tmp_path_factory.mktemp("fleet")
        groups: dict = {}
        for name, (_image, group, _version) in HOSTS.items():
            groups.setdefault(group, {"hosts": {}})["hosts"][name] = None
        inventory = {
            "all": {
                "vars": {
                    "ansible_connection": "containers.podman.podman",
                    "ansible_podman_executable": str(FLEET / "podman"),
                    "ansible_python_interpreter": "/usr/bin/python3",
                },
                "children": groups,
            }
        }
        (work / "inventory.json").write_text(json.dumps(inventory))
        (work / "check.yml").write_text(PLAYBOOK)
        (work / "guest.json").write_text(json.dumps({"guest_xml": GUEST_XML}))
        results = work / "results.json"
        t1 = time.monotonic()
        proc = _run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(work / "inventory.json"), str(work / "check.yml"),
             "-e", "@" + str(work / "guest.json"), "-e", "results_file=" + str(results)],
            timeout=600, env=fleet_env(), cwd=work,
        )
        print(proc.stdout[-6000:])
        assert proc.returncode == 0, "the Ansible run over containers.podman failed:\n%s\n%s" % (
            proc.stdout[-6000:], proc.stderr[-3000:])
        data = json.loads(results.read_text())
        data["_timings"] = {"fleet_up": up_seconds, "playbook": time.monotonic() - t1}
        print("fleet timings: %s" % data["_timings"])
        yield data
    finally:
        _fleet_down(names)


def test_every_host_answers_over_the_podman_connection(fleet):
    for name, (image, _group, _version) in HOSTS.items():
        facts = fleet[name]["r_facts"]
        assert facts["hostname"] == name
        assert facts["distribution"] == "Debian"
        assert facts["major"] == ("13" if image.startswith("trixie") else "12"), facts
        assert facts["python"].startswith("/usr/bin/python3"), facts


def test_libvirtd_versions(fleet):
    for name, (_image, _group, version) in HOSTS.items():
        if version is None:
            continue
        out = fleet[name]["r_version"]["stdout"]
        assert "Running against daemon: %s" % version in out, (name, out)


def test_sysconfdir_comes_from_the_daemon(fleet):
    for name, (image, _group, version) in HOSTS.items():
        if version is None:
            continue
        prefix = "/usr/local" if image == "srcbuild" else ""
        lines = fleet[name]["r_help"]["stdout_lines"]
        daemon = "/usr/local/sbin/libvirtd" if prefix else "/usr/sbin/libvirtd"
        assert lines[0] == daemon, (name, lines[0])
        assert prefix + "/etc/libvirt/libvirtd.conf" in fleet[name]["r_help"]["stdout"].split(), (name, lines)


def test_bare_host_has_no_libvirtd(fleet):
    assert fleet[BARE]["r_nolibvirt"]["stdout"].strip() == "none", fleet[BARE]["r_nolibvirt"]
    for name in HOSTS:
        if name != BARE:
            assert "r_nolibvirt" not in fleet[name]


def test_diskless_tcg_guest_runs_on_every_libvirt_host(fleet):
    for name, (_image, _group, version) in HOSTS.items():
        if version is not None:
            assert fleet[name]["r_guest"]["stdout"].strip() == "running/shut off", (name, fleet[name]["r_guest"])


MOLECULE_YML = """\
driver:
  name: default
  options:
    managed: true
platforms:
  - name: vhm-bookworm-{suffix}
    image: bookworm-libvirt
    groups: [gen9]
  - name: vhm-bare-{suffix}
    image: bookworm-bare
    groups: [nolibvirt]
provisioner:
  name: ansible
  playbooks:
    create: {playbooks}/create.yml
    destroy: {playbooks}/destroy.yml
  inventory:
    group_vars:
      gen9:
        fleet_generation: 9
scenario:
  test_sequence: [destroy, create, converge, verify, destroy]
"""

MOLECULE_CONVERGE = """\
- name: Converge
  hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        dest: /root/fleet-marker
        content: "{{ inventory_hostname }} {{ fleet_generation | default('none') }}\\n"
        mode: "0644"
"""

MOLECULE_VERIFY = """\
- name: Verify
  hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: cat /root/fleet-marker
      register: marker
      changed_when: false
    - ansible.builtin.assert:
        that:
          - marker.stdout == inventory_hostname ~ ' ' ~ ('9' if 'gen9' in group_names else 'none')
          - ansible_connection == 'containers.podman.podman'
          - "'virthooks_fleet' in group_names"
    - ansible.builtin.command: virsh -c qemu:///system version --daemon
      when: "'gen9' in group_names"
      changed_when: false
"""


def test_molecule_create_and_destroy_playbooks(tmp_path):
    """`molecule test` on a two-platform scenario that uses utils/playbooks/create.yml and destroy.yml."""
    _require_podman()
    scenario = tmp_path / "molecule" / "fleetglue"
    scenario.mkdir(parents=True)
    (scenario / "molecule.yml").write_text(MOLECULE_YML.format(suffix=SUFFIX, playbooks=PLAYBOOKS))
    (scenario / "converge.yml").write_text(MOLECULE_CONVERGE)
    (scenario / "verify.yml").write_text(MOLECULE_VERIFY)
    names = ["vhm-bookworm-" + SUFFIX, "vhm-bare-" + SUFFIX]
    env = fleet_env(MOLECULE_NO_LOG="false", NO_COLOR="1")
    env.pop("ANSIBLE_CONFIG", None)  # molecule writes its own ansible.cfg
    try:
        proc = _run([str(VENV_BIN / "molecule"), "test", "-s", "fleetglue"], timeout=1800, env=env, cwd=tmp_path)
        assert proc.returncode == 0, "molecule test failed:\n%s\n%s" % (proc.stdout[-8000:], proc.stderr[-3000:])
        assert "1 successful" in proc.stdout + proc.stderr
        left = [n for n in names if _podman("container", "exists", n).returncode == 0]
        assert not left, "molecule destroy left %s" % left
    finally:
        _fleet_down(names)
