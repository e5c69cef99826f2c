"""virthooks.libvirt.hooks_state run for real through ansible-playbook (the drift check's per-host reader)."""
from __future__ import annotations

from tests.support.ansible import run_module

XML = "<domain type='kvm'><name>%s</name><devices/></domain>"


def fake_virsh(tmp_path, guests):
    """A virsh that answers `list --all --name` and `dumpxml NAME` as libvirt would, and logs its argv."""
    virsh = tmp_path / "virsh"
    lines = ["#!/bin/sh", 'echo "$*" >> %s/virsh.argv' % tmp_path, 'case "$3" in',
             "list) printf '%s\\n\\n' " + " ".join("'%s'" % g for g in guests) + " ;;",
             'dumpxml) [ "$4" = -- ] || exit 2',
             "  printf \"<domain type='kvm'><name>%s</name><devices/></domain>\" \"$5\" ;;",
             "*) exit 1 ;;", "esac"]
    virsh.write_text("\n".join(lines) + "\n")
    virsh.chmod(0o755)
    return virsh


def test_a_host_without_a_deploy_is_described_empty_in_check_mode(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    result = run_module("virthooks.libvirt.hooks_state", {"hooks_dir": str(hooks), "evaluate": {"vm": XML % "vm"}},
                        check=True)
    assert not result.get("failed"), result
    assert result["changed"] is False and result["generation"] == "" and result["scripts"] == {}
    assert result["entry_points"] == {} and result["runtime"] == {"version": None, "lib": None}
    assert result["steps"] == {}


def test_guests_are_read_with_virsh_list_and_dumpxml(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    virsh = fake_virsh(tmp_path, ["web01", "db 2"])
    result = run_module("virthooks.libvirt.hooks_state", {"hooks_dir": str(hooks), "list_guests": True,
                                                          "virsh": str(virsh), "uri": "qemu:///system"})
    assert not result.get("failed"), result
    assert result["guests"] == {"web01": XML % "web01", "db 2": XML % "db 2"}
    assert (tmp_path / "virsh.argv").read_text().splitlines() == [
        "-c qemu:///system list --all --name", "-c qemu:///system dumpxml -- web01", "-c qemu:///system dumpxml -- db 2"]


def test_an_event_that_is_not_operation_and_suboperation_is_refused(tmp_path):
    result = run_module("virthooks.libvirt.hooks_state", {"hooks_dir": str(tmp_path), "events": ["prepare"]})
    assert result["failed"] and "'prepare' is not 'operation sub-operation'" in result["msg"]


def test_a_guest_xml_that_is_not_utf8_is_named(tmp_path):
    hooks, xml = tmp_path / "hooks", tmp_path / "xml"
    hooks.mkdir()
    xml.mkdir()
    (xml / "good.xml").write_text(XML % "good")
    (xml / "latin.xml").write_bytes((XML % "caf\xe9").encode("latin-1"))
    result = run_module("virthooks.libvirt.hooks_state", {"hooks_dir": str(hooks), "xml_dir": str(xml)})
    assert result["failed"], result
    assert result["msg"] == "xml_dir: %s is not UTF-8 (byte 0xe9 at offset 28)" % (xml / "latin.xml")
