"""Host detection: real files under a temporary root, real (small) executables, no mocks."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from ansible_collections.virthooks.libvirt.plugins.module_utils import detect
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.layout import ENTRY_POINT_MARKER

HELP_TEMPLATE = """
Usage:
  {name} [options]

Options:
  -h | --help            Display program help
  -V | --version         Display version information

libvirt management daemon:

  Default paths:

    Configuration file (unless overridden by -f):
      {conf}

    Sockets:
      /run/libvirt/{name}-sock

    PID file (unless overridden by -p):
      {pidfile}
"""


def write_executable(path: Path, text: str, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def fake_daemon(bin_dir: Path, name: str = "libvirtd", version: str = "9.0.0",
                conf: str | None = "/etc/libvirt/libvirtd.conf", pidfile: str = "/run/libvirtd.pid") -> Path:
    """A real executable that answers --version and --help (on stderr) like libvirt's daemons,
    and otherwise sleeps like a running daemon."""
    help_text = HELP_TEMPLATE.format(name=name, conf=conf, pidfile=pidfile) if conf else ""
    script = textwrap.dedent("""\
        #!/bin/sh
        case "$1" in
          --version) echo "{name} (libvirt) {version}" ;;
          --help) cat >&2 <<'EOF'
        {help}
        EOF
          ;;
          *) sleep 60 ;;
        esac
        """).format(name=name, version=version, help=help_text)
    return write_executable(bin_dir / name, script)


def failing_daemon(bin_dir: Path, name: str = "libvirtd") -> Path:
    """A daemon binary that answers nothing useful (e.g. a library missing in an image)."""
    return write_executable(bin_dir / name, "#!/bin/sh\nexit 127\n")


def os_release(root: Path, text: str) -> None:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "os-release").write_text(text)


def entry_point(path: Path, ours: bool = True) -> Path:
    marker = ENTRY_POINT_MARKER + "\n" if ours else ""
    return write_executable(path, "#!/bin/sh\n" + marker + "exec true\n")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def hooks(root: Path) -> Path:
    path = root / "etc" / "libvirt" / "hooks"
    path.mkdir(parents=True)
    return path


def files_by_path(info: dict) -> dict:
    return {f["path"]: f for f in info["files"]}


# ------------------------------------------------------------------ classification

def test_entry_point_with_marker_is_ours(root, hooks):
    entry_point(hooks / "qemu")
    f = files_by_path(detect.detect(str(root)))["qemu"]
    assert (f["kind"], f["driver"], f["executable"]) == ("ours", "qemu", True)


def test_driver_named_file_without_marker_is_foreign(root, hooks):
    entry_point(hooks / "network", ours=False)
    f = files_by_path(detect.detect(str(root)))["network"]
    assert (f["kind"], f["driver"]) == ("foreign", "network")


def test_marker_after_the_first_lines_does_not_make_a_file_ours(root, hooks):
    write_executable(hooks / "qemu", "#!/bin/sh\n" + "true\n" * 10 + ENTRY_POINT_MARKER + "\n")
    assert files_by_path(detect.detect(str(root)))["qemu"]["kind"] == "foreign"


def test_everything_under_our_directory_is_ours(root, hooks):
    own = hooks / "virthooks"
    (own / "scripts").mkdir(parents=True)
    (own / "lib" / "virthooks_runtime").mkdir(parents=True)
    (own / "config.json").write_text("{}")
    write_executable(own / "scripts" / "pin-cpus", "#!/bin/sh\n")
    (own / "lib" / "virthooks_runtime" / "dispatch.py").write_text("")
    files = files_by_path(detect.detect(str(root)))
    assert {p: f["kind"] for p, f in files.items()} == {
        "virthooks/config.json": "ours",
        "virthooks/scripts/pin-cpus": "ours",
        "virthooks/lib/virthooks_runtime/dispatch.py": "ours",
    }


def test_files_directly_in_driver_d_are_native_d_with_their_executable_bit(root, hooks):
    write_executable(hooks / "qemu.d" / "10-run", "#!/bin/sh\n")
    write_executable(hooks / "qemu.d" / "20-disabled", "#!/bin/sh\n", mode=0o644)
    files = files_by_path(detect.detect(str(root)))
    assert (files["qemu.d/10-run"]["kind"], files["qemu.d/10-run"]["executable"]) == ("native_d", True)
    assert (files["qemu.d/20-disabled"]["kind"], files["qemu.d/20-disabled"]["executable"]) == ("native_d", False)
    assert files["qemu.d/20-disabled"]["mode"] == "0644"


def test_broken_symlink_in_driver_d_is_native_d_but_not_executable(root, hooks):
    (hooks / "qemu.d").mkdir()
    (hooks / "qemu.d" / "gone").symlink_to("/nonexistent/script")
    f = files_by_path(detect.detect(str(root)))["qemu.d/gone"]
    assert (f["kind"], f["symlink"], f["executable"]) == ("native_d", True, False)


def test_per_guest_tree_files_carry_their_event(root, hooks):
    write_executable(hooks / "qemu.d" / "win10" / "prepare" / "begin" / "alloc-hugepages.sh", "#!/bin/sh\n")
    f = files_by_path(detect.detect(str(root)))["qemu.d/win10/prepare/begin/alloc-hugepages.sh"]
    assert (f["kind"], f["driver"], f["object"], f["operation"], f["suboperation"]) == \
        ("tree", "qemu", "win10", "prepare", "begin")


def test_sub_operation_file_of_the_per_guest_tree_is_tree(root, hooks):
    # The helper also runs <driver>.d/<guest>/<op>/<sub-op> when it is a file itself.
    write_executable(hooks / "qemu.d" / "win10" / "release" / "end", "#!/bin/sh\n")
    f = files_by_path(detect.detect(str(root)))["qemu.d/win10/release/end"]
    assert (f["kind"], f["object"], f["operation"], f["suboperation"]) == ("tree", "win10", "release", "end")


def test_files_that_fit_no_layout_are_other(root, hooks):
    (hooks / "README").write_text("notes")
    write_executable(hooks / "qemu.d" / "win10" / "stray.sh", "#!/bin/sh\n")
    write_executable(hooks / "qemu.d" / "a" / "b" / "c" / "d" / "too-deep", "#!/bin/sh\n")
    write_executable(hooks / "storage.d" / "x", "#!/bin/sh\n")
    (hooks / "virthooks").write_text("a file where our directory belongs")
    kinds = {p: (f["kind"], f["driver"]) for p, f in files_by_path(detect.detect(str(root))).items()}
    assert kinds == {
        "README": ("other", None),
        "qemu.d/win10/stray.sh": ("other", "qemu"),
        "qemu.d/a/b/c/d/too-deep": ("other", "qemu"),
        "storage.d/x": ("other", None),
        "virthooks": ("other", None),
    }


def test_driver_summary_says_whose_entry_point_each_driver_has(root, hooks):
    entry_point(hooks / "qemu")
    entry_point(hooks / "network", ours=False)
    write_executable(hooks / "qemu.d" / "10-a", "#!/bin/sh\n")
    write_executable(hooks / "qemu.d" / "20-b", "#!/bin/sh\n", mode=0o600)
    write_executable(hooks / "qemu.d" / "g" / "start" / "begin" / "x", "#!/bin/sh\n")
    drivers = detect.detect(str(root))["drivers"]
    assert drivers["qemu"] == {
        "daemons": [], "entry_point": "ours", "entry_point_path": str(hooks / "qemu"),
        "entry_point_executable": True, "native_d_files": 2, "native_d_executable": 1, "tree_files": 1,
    }
    assert drivers["network"]["entry_point"] == "foreign"
    assert drivers["lxc"]["entry_point"] == "absent"
    assert set(drivers) == {"daemon", "qemu", "lxc", "libxl", "bhyve", "network"}


def test_executable_backup_copy_in_driver_d_is_warned_about(root, hooks):
    write_executable(hooks / "qemu.d" / "10-pin.sh.12345.2026-11-29@10:00:00~", "#!/bin/sh\n")
    warnings = detect.detect(str(root))["warnings"]
    assert any("backup copy" in w and "qemu.d/10-pin.sh" in w for w in warnings)


def test_non_executable_entry_point_is_warned_about(root, hooks):
    entry_point(hooks / "qemu").chmod(0o644)
    info = detect.detect(str(root))
    assert info["drivers"]["qemu"]["entry_point_executable"] is False
    assert any("hook qemu is not an executable file" in w for w in info["warnings"])


# ------------------------------------------------------------------ sysconfdir

def test_sysconfdir_comes_from_the_daemons_help(root):
    os_release(root, "ID=debian\n")
    (root / "opt" / "virt" / "etc").mkdir(parents=True)
    fake_daemon(root / "usr" / "sbin", conf="/opt/virt/etc/libvirt/libvirtd.conf")
    info = detect.detect(str(root))
    assert (info["sysconfdir"], info["sysconfdir_source"]) == ("/opt/virt/etc", "daemon")
    assert info["hooks_dir"] == str(root / "opt" / "virt" / "etc" / "libvirt" / "hooks")


def test_daemon_in_a_search_path_directory_is_found_and_asked(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_daemon(bin_dir, conf="/srv/x/libvirt/libvirtd.conf", version="10.5.0")
    info = detect.detect("", search_path=[str(bin_dir)])
    assert info["binaries"]["libvirtd"] == str(bin_dir / "libvirtd")
    assert (info["version"], info["version_from"]) == ("10.5.0", str(bin_dir / "libvirtd"))
    assert (info["sysconfdir"], info["sysconfdir_source"]) == ("/srv/x", "daemon")


def test_help_text_of_an_unprivileged_run_is_not_trusted(root):
    os_release(root, "ID=alpine\n")
    fake_daemon(root / "usr" / "sbin", conf="$XDG_CONFIG_HOME/libvirt/libvirtd.conf")
    info = detect.detect(str(root))
    assert (info["sysconfdir"], info["sysconfdir_source"]) == ("/etc", "os_family")


@pytest.mark.parametrize("release, family, sysconfdir", [
    ("ID=debian\n", "Debian", "/etc"),
    ('ID=ubuntu\nID_LIKE="debian"\n', "Debian", "/etc"),
    ('ID=pop\nID_LIKE="ubuntu debian"\n', "Debian", "/etc"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "RedHat", "/etc"),
    ("ID=fedora\n", "RedHat", "/etc"),
    ('ID="opensuse-leap"\nID_LIKE="suse opensuse"\n', "Suse", "/etc"),
    ("ID=arch\n", "Archlinux", "/etc"),
    ("ID=alpine\n", "Alpine", "/etc"),
    ("ID=freebsd\n", "FreeBSD", "/usr/local/etc"),
    ("ID=nixos\n", "NixOS", "/var/lib"),
])
def test_sysconfdir_falls_back_to_the_os_family(root, release, family, sysconfdir):
    os_release(root, release)
    info = detect.detect(str(root))
    assert (info["os_family"], info["sysconfdir"], info["sysconfdir_source"]) == (family, sysconfdir, "os_family")


def test_os_family_fallback_applies_when_the_daemon_does_not_answer(root):
    os_release(root, "ID=nixos\n")
    failing_daemon(root / "run" / "current-system" / "sw" / "sbin")
    info = detect.detect(str(root))
    assert info["installed"] is True
    assert (info["sysconfdir"], info["sysconfdir_source"]) == ("/var/lib", "os_family")


def test_os_release_under_usr_lib_is_read_too(root):
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "os-release").write_text("ID=arch\n")
    assert detect.detect(str(root))["os_family"] == "Archlinux"


def test_freebsd_without_os_release_is_recognised_by_its_marker(root):
    write_executable(root / "bin" / "freebsd-version", "#!/bin/sh\necho 14.1-RELEASE\n")
    info = detect.detect(str(root))
    assert (info["os_family"], info["sysconfdir"]) == ("FreeBSD", "/usr/local/etc")


def test_silent_daemon_under_usr_local_means_usr_local_etc(root):
    os_release(root, "ID=debian\n")
    failing_daemon(root / "usr" / "local" / "sbin")
    info = detect.detect(str(root))
    assert (info["sysconfdir"], info["sysconfdir_source"]) == ("/usr/local/etc", "install_prefix")


def test_unknown_os_defaults_to_etc(root):
    os_release(root, "ID=someos\n")
    info = detect.detect(str(root))
    assert (info["os_family"], info["sysconfdir"], info["sysconfdir_source"]) == (None, "/etc", "default")


def test_explicit_sysconfdir_wins_over_the_daemon_and_warns_about_the_difference(root):
    (root / "opt" / "etc").mkdir(parents=True)
    fake_daemon(root / "usr" / "sbin", conf="/etc/libvirt/libvirtd.conf")
    info = detect.detect(str(root), sysconfdir="/opt/etc/")
    assert (info["sysconfdir"], info["sysconfdir_source"]) == ("/opt/etc", "parameter")
    assert info["hooks_dir"] == str(root / "opt" / "etc" / "libvirt" / "hooks")
    assert any("sysconfdir /opt/etc was given, but libvirtd reports /etc" in w for w in info["warnings"])


def test_explicit_sysconfdir_that_matches_the_daemon_gives_no_warning(root):
    (root / "etc").mkdir()
    fake_daemon(root / "usr" / "sbin")
    info = detect.detect(str(root), sysconfdir="/etc")
    assert info["sysconfdir_source"] == "parameter"
    assert info["warnings"] == []


def test_missing_explicit_sysconfdir_is_an_error_naming_it(root):
    with pytest.raises(detect.DetectionError, match=r"sysconfdir '/opt/nowhere' does not exist"):
        detect.detect(str(root), sysconfdir="/opt/nowhere")


def test_relative_explicit_sysconfdir_is_an_error(root):
    with pytest.raises(detect.DetectionError, match=r"sysconfdir 'etc' must be an absolute path"):
        detect.detect(str(root), sysconfdir="etc")


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(detect.DetectionError, match=r"root .*/absent' does not exist"):
        detect.detect(str(tmp_path / "absent"))


# ------------------------------------------------------------------ libvirt absent / versions

def test_nothing_installed_reports_so_and_fails_nothing(root):
    info = detect.detect(str(root))
    assert info["installed"] is False
    assert (info["version"], info["version_from"], info["mode"], info["native_hooks_d"]) == (None, None, None, None)
    assert info["daemons"] == {} and info["binaries"] == {} and info["files"] == []
    assert info["hooks_dir_exists"] is False
    assert info["reload_possible"] is False
    assert all(d["daemons"] == [] and d["entry_point"] == "absent" for d in info["drivers"].values())


def test_client_only_host_is_not_installed_but_has_a_version(root):
    write_executable(root / "usr" / "bin" / "virsh", "#!/bin/sh\necho 8.0.0\n")
    info = detect.detect(str(root))
    assert info["installed"] is False
    assert (info["version"], info["version_from"]) == ("8.0.0", str(root / "usr" / "bin" / "virsh"))


@pytest.mark.parametrize("version, native", [("6.4.0", False), ("6.5.0", True), ("11.3.0", True)])
def test_native_hooks_d_support_follows_the_version(root, version, native):
    fake_daemon(root / "usr" / "sbin", version=version)
    assert detect.detect(str(root))["native_hooks_d"] is native


# ------------------------------------------------------------------ daemons and mode

def test_monolithic_libvirtd_runs_every_driver(root):
    fake_daemon(root / "usr" / "sbin")
    info = detect.detect(str(root))
    assert info["mode"] == "monolithic"
    assert list(info["daemons"]) == ["libvirtd"]
    assert all(d["daemons"] == ["libvirtd"] for d in info["drivers"].values())


def test_modular_daemons_run_their_own_driver_and_all_run_the_daemon_hook(root):
    sbin = root / "usr" / "sbin"
    for name in ("virtqemud", "virtnetworkd", "virtstoraged"):
        fake_daemon(sbin, name=name, conf="/etc/libvirt/%s.conf" % name, pidfile="/run/%s.pid" % name)
    info = detect.detect(str(root))
    assert info["mode"] == "modular"
    assert info["sysconfdir_source"] == "daemon"
    drivers = info["drivers"]
    assert drivers["qemu"]["daemons"] == ["virtqemud"]
    assert drivers["network"]["daemons"] == ["virtnetworkd"]
    assert drivers["lxc"]["daemons"] == []
    assert sorted(drivers["daemon"]["daemons"]) == ["virtnetworkd", "virtqemud", "virtstoraged"]
    assert info["daemons"]["virtqemud"]["drivers"] == ["daemon", "qemu"]
    assert info["daemons"]["virtqemud"]["service"] == "virtqemud"


@pytest.mark.parametrize("marker, mode", [
    ("etc/rc2.d/S01libvirtd", "monolithic"),
    ("etc/systemd/system/sockets.target.wants/virtqemud.socket", "modular"),
    ("etc/runlevels/default/libvirtd", "monolithic"),
    (None, "modular"),
])
def test_mode_follows_what_is_enabled_when_both_kinds_are_installed(root, marker, mode):
    fake_daemon(root / "usr" / "sbin")
    fake_daemon(root / "usr" / "sbin", name="virtqemud", conf="/etc/libvirt/virtqemud.conf")
    if marker:
        (root / marker).parent.mkdir(parents=True)
        (root / marker).symlink_to("/dev/null")
    assert detect.detect(str(root))["mode"] == mode


def test_daemon_running_per_its_pidfile_and_proc_under_root(root):
    fake_daemon(root / "usr" / "sbin", pidfile="/run/libvirtd.pid")
    (root / "run").mkdir()
    (root / "run" / "libvirtd.pid").write_text("4242\n")
    (root / "proc" / "4242").mkdir(parents=True)
    (root / "proc" / "4242" / "comm").write_text("libvirtd\n")
    daemon = detect.detect(str(root))["daemons"]["libvirtd"]
    assert (daemon["running"], daemon["pid"], daemon["pidfile"]) == (True, 4242, str(root / "run" / "libvirtd.pid"))


def test_stale_pidfile_is_not_a_running_daemon(root):
    fake_daemon(root / "usr" / "sbin")
    (root / "run").mkdir()
    (root / "run" / "libvirtd.pid").write_text("4242\n")
    (root / "proc" / "4242").mkdir(parents=True)
    (root / "proc" / "4242" / "comm").write_text("bash\n")
    info = detect.detect(str(root))
    assert (info["daemons"]["libvirtd"]["running"], info["reload_possible"]) == (False, False)


def test_a_plain_directory_root_has_no_running_daemon(root):
    fake_daemon(root / "usr" / "sbin")
    info = detect.detect(str(root))
    assert (info["daemons"]["libvirtd"]["running"], info["daemons"]["libvirtd"]["can_reload"]) == (False, False)


@pytest.fixture
def running_fake_virtqemud(tmp_path):
    """A real process whose command name is virtqemud (the fake daemon, sleeping)."""
    bin_dir = tmp_path / "bin"
    path = fake_daemon(bin_dir, name="virtqemud", conf="/etc/libvirt/virtqemud.conf",
                       pidfile=str(tmp_path / "virtqemud.pid"))
    proc = subprocess.Popen([str(path)], start_new_session=True)
    yield bin_dir, proc.pid
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.root
def test_running_daemon_is_found_in_proc_and_can_be_reloaded(running_fake_virtqemud):
    bin_dir, pid = running_fake_virtqemud
    info = detect.detect("", search_path=[str(bin_dir)])
    daemon = info["daemons"]["virtqemud"]
    assert (info["mode"], daemon["running"], daemon["pid"], daemon["can_reload"]) == ("modular", True, pid, True)
    assert info["reload_possible"] is True


# ------------------------------------------------------------------ init system

@pytest.mark.parametrize("markers, init_system", [
    (["run/systemd/system/"], "systemd"),
    (["run/openrc/"], "openrc"),
    (["sbin/openrc-run"], "openrc"),
    (["etc/rc.subr"], "bsdrc"),
    (["etc/init.d/libvirtd"], "sysvinit"),
    (["etc/init.d/libvirtd", "lib/systemd/systemd"], "sysvinit"),
    (["etc/init.d/libvirtd", "lib/systemd/systemd", "run/systemd/system/"], "systemd"),
    (["usr/lib/systemd/systemd"], "systemd"),
    (["etc/init.d/README"], "unknown"),
    ([], "unknown"),
])
def test_init_system_is_detected_from_its_markers(root, markers, init_system):
    for marker in markers:
        path = root / marker
        if marker.endswith("/"):
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
    assert detect.detect(str(root))["init_system"] == init_system


def test_service_file_of_the_init_system_is_reported(root):
    fake_daemon(root / "usr" / "sbin")
    write_executable(root / "etc" / "init.d" / "libvirtd", "#!/bin/sh\n")
    daemon = detect.detect(str(root))["daemons"]["libvirtd"]
    assert (daemon["service"], daemon["service_file"], daemon["enabled"]) == \
        ("libvirtd", str(root / "etc" / "init.d" / "libvirtd"), False)


def test_freebsd_rc_conf_enables_a_daemon(root):
    fake_daemon(root / "usr" / "local" / "sbin", conf="/usr/local/etc/libvirt/libvirtd.conf")
    (root / "etc").mkdir()
    (root / "etc" / "rc.subr").write_text("")
    (root / "etc" / "rc.conf").write_text('hostname="hv"\nlibvirtd_enable="YES"\n')
    write_executable(root / "usr" / "local" / "etc" / "rc.d" / "libvirtd", "#!/bin/sh\n")
    info = detect.detect(str(root))
    daemon = info["daemons"]["libvirtd"]
    assert (info["init_system"], daemon["enabled"], daemon["service_file"]) == \
        ("bsdrc", True, str(root / "usr" / "local" / "etc" / "rc.d" / "libvirtd"))
    assert info["sysconfdir"] == "/usr/local/etc"


# ------------------------------------------------------------------ SELinux and AppArmor

def selinuxfs(root: Path, enforce: str, unconfined: str | None) -> None:
    fs = root / "sys" / "fs" / "selinux"
    (fs / "booleans").mkdir(parents=True)
    (fs / "enforce").write_text(enforce)
    if unconfined is not None:
        (fs / "booleans" / "virt_hooks_unconfined").write_text(unconfined)


def test_selinux_enforcing_with_the_hooks_boolean_off(root):
    selinuxfs(root, "1", "0 0")
    assert detect.detect(str(root))["selinux"] == {
        "enabled": True, "mode": "enforcing", "virt_hooks_unconfined": False}


def test_selinux_permissive_with_the_hooks_boolean_on(root):
    selinuxfs(root, "0", "1 1")
    assert detect.detect(str(root))["selinux"] == {
        "enabled": True, "mode": "permissive", "virt_hooks_unconfined": True}


def test_selinux_policy_without_the_hooks_boolean(root):
    selinuxfs(root, "1", None)
    assert detect.detect(str(root))["selinux"]["virt_hooks_unconfined"] is None


def test_selinux_mode_from_getenforce_when_selinuxfs_is_not_there(root):
    write_executable(root / "usr" / "sbin" / "getenforce", "#!/bin/sh\necho Permissive\n")
    selinux = detect.detect(str(root))["selinux"]
    assert (selinux["enabled"], selinux["mode"]) == (True, "permissive")


def test_no_selinux_at_all_is_disabled(root):
    assert detect.detect(str(root))["selinux"] == {
        "enabled": False, "mode": "disabled", "virt_hooks_unconfined": None}


def test_apparmor_with_a_libvirtd_profile_loaded(root):
    params = root / "sys" / "module" / "apparmor" / "parameters"
    params.mkdir(parents=True)
    (params / "enabled").write_text("Y\n")
    security = root / "sys" / "kernel" / "security" / "apparmor"
    security.mkdir(parents=True)
    (security / "profiles").write_text(
        "libvirtd (enforce)\n/usr/sbin/virtqemud (complain)\nlibvirt-1234 (enforce)\nman_filter (enforce)\n")
    assert detect.detect(str(root))["apparmor"] == {
        "enabled": True, "libvirtd_profile_loaded": True,
        "profiles": {"libvirtd": "enforce", "virtqemud": "complain"}}


def test_apparmor_absent(root):
    assert detect.detect(str(root))["apparmor"] == {
        "enabled": False, "libvirtd_profile_loaded": None, "profiles": {}}


# ------------------------------------------------------------------ a sandbox host

def test_sandbox_is_described_by_its_settings_not_by_the_running_daemon(running_fake_virtqemud, tmp_path):
    """A virtqemud runs and answers --help here; a sandbox says libvirtd 10.1.0, and no daemon runs in it."""
    bin_dir, _pid = running_fake_virtqemud
    asked = bin_dir / "asked"
    write_executable(bin_dir / "virsh", "#!/bin/sh\necho \"$0 $*\" >> %s\n" % asked)
    box = tmp_path / "box"
    info = detect.detect("", search_path=[str(bin_dir)],
                         sandbox={"dir": str(box), "version": "10.1.0", "daemons": ["libvirtd"]})
    assert not asked.exists()
    assert (info["version"], info["version_from"], info["mode"], info["binaries"]) == ("10.1.0", "sandbox", "monolithic", {})
    assert (info["sysconfdir"], info["sysconfdir_source"]) == (str(box / "etc"), "sandbox")
    assert info["hooks_dir"] == str(box / "etc" / "libvirt" / "hooks") and not info["hooks_dir_exists"]
    assert list(info["daemons"]) == ["libvirtd"]
    assert (info["daemons"]["libvirtd"]["running"], info["daemons"]["libvirtd"]["pid"], info["reload_possible"]) == (False, None, False)
    assert info["selinux"]["enabled"] is False and info["apparmor"]["enabled"] is False
    assert info["init_system"] == "unknown" and info["warnings"] == []


def test_sandbox_modular_daemons_and_its_own_metrics_job_files(tmp_path):
    box = tmp_path / "box"
    (box / "etc" / "cron.d").mkdir(parents=True)
    (box / "etc" / "cron.d" / "virthooks-metrics").write_text("")
    info = detect.detect(sandbox={"dir": str(box) + "/", "version": "6.4.0", "daemons": ["virtqemud", "virtnetworkd"],
                                  "init_system": "systemd"})
    assert (info["mode"], sorted(info["daemons"]), info["native_hooks_d"]) == ("modular", ["virtnetworkd", "virtqemud"], False)
    assert info["drivers"]["network"]["daemons"] == ["virtnetworkd"] and info["init_system"] == "systemd"
    assert info["metrics_job_files"] == ["/etc/cron.d/virthooks-metrics"]


@pytest.mark.parametrize("sandbox, sysconfdir, root, message", [
    ({"dir": "box"}, "", "", "sandbox.dir 'box' must be an absolute path"),
    ({"dir": "{tmp}", "version": "ten"}, "", "", "sandbox.version 'ten' is not a libvirt version"),
    ({"dir": "{tmp}", "daemons": ["virtlogd"]}, "", "", "sandbox.daemons ['virtlogd']"),
    ({"dir": "{tmp}/box"}, "/etc", "", "sysconfdir '/etc' is outside sandbox.dir"),
    ({"dir": "{tmp}"}, "", "{tmp}", "root and sandbox exclude each other"),
])
def test_bad_sandbox_settings_are_one_error_naming_them(tmp_path, sandbox, sysconfdir, root, message):
    sandbox = {key: value.format(tmp=tmp_path) if isinstance(value, str) else value for key, value in sandbox.items()}
    with pytest.raises(detect.DetectionError, match=re.escape(message)):
        detect.detect(root.format(tmp=tmp_path), sysconfdir, sandbox=sandbox)


def test_an_explicit_hooks_dir_outside_the_sandbox_is_refused(tmp_path):
    box = str(tmp_path / "box")
    assert detect.resolve_hooks_dir(box + "/etc/libvirt/hooks/", sandbox={"dir": box}) == box + "/etc/libvirt/hooks"
    with pytest.raises(detect.DetectionError, match="hooks_dir /etc/libvirt/hooks is outside sandbox.dir"):
        detect.resolve_hooks_dir("/etc/libvirt/hooks", sandbox={"dir": box})
    with pytest.raises(detect.DetectionError, match="outside sandbox.dir"):
        detect.resolve_hooks_dir(box + "-other/hooks", sandbox={"dir": box})


@pytest.mark.parametrize("family,binaries,python", [
    ("Debian", {"libvirtd": "/usr/sbin/libvirtd"}, "/usr/bin/python3"),
    (None, {}, "/usr/bin/python3"),
    ("FreeBSD", {"libvirtd": "/usr/local/sbin/libvirtd"}, "/usr/local/bin/python3"),
    ("NixOS", {"libvirtd": "/run/current-system/sw/bin/libvirtd"}, "/run/current-system/sw/bin/python3"),
    # a libvirt built from source under /usr/local: the system's Python, as on the family with packages
    ("RedHat", {"libvirtd": "/usr/local/sbin/libvirtd"}, "/usr/bin/python3"),
    ("NixOS", {"libvirtd": "/usr/local/sbin/libvirtd"}, "/usr/bin/python3"),
])
def test_the_hooks_python_is_the_os_familys(family, binaries, python):
    assert detect.platform_python({"os_family": family, "binaries": binaries}) == python


def test_tree_drivers_are_those_whose_per_guest_tree_holds_files(root, hooks):
    (hooks / "network.d" / "lan" / "started" / "begin").mkdir(parents=True)
    (hooks / "network.d" / "lan" / "started" / "begin" / "fw.sh").write_text("#!/bin/sh\n")
    (hooks / "qemu.d" / "win10" / "prepare" / "begin").mkdir(parents=True)
    (hooks / "qemu.d" / "win10" / "prepare" / "begin" / "a.sh").write_text("#!/bin/sh\n")
    (hooks / "lxc.d").mkdir()
    (hooks / "lxc.d" / "native.sh").write_text("#!/bin/sh\n")
    assert detect.tree_drivers(detect.inventory_hooks(str(hooks))) == ["qemu", "network"]
