# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libvirt hook event model: the single place that knows what libvirt calls and how.

Sources: libvirt's src/util/virhook.[ch], docs/hooks.rst and the drivers' callers of
virHookCall (qemu_process.c, qemu_migration.c, qemu_saveimage.c, network/bridge_driver.c,
lxc_process.c, libxl_domain.c, bhyve_process.c, remote_daemon.c), cross-checked on
libvirt 9.0.0 and 11.3.0 (see shared/docs/libvirt-hooks.md).

An event is (driver, operation, sub-operation). For each known event this module says
whether a non-zero exit of the hook makes libvirt abort what it is doing (``abortable``),
whether libvirt reads the hook's stdout as replacement XML (``xml_out``) and what arrives on
stdin. Operations a newer libvirt may add are still dispatched: they are treated as
abortable (the safe reading: a failure is reported, not swallowed) and not XML-out.

This module is on the hot path of every hook call: it imports nothing.
"""

DRIVERS = ("daemon", "qemu", "lxc", "libxl", "bhyve", "network")
GUEST_DRIVERS = ("qemu", "lxc", "libxl", "bhyve")

# What the hook gets on stdin, per driver.
STDIN_NONE = "none"
STDIN_DOMAIN_XML = "domain-xml"
STDIN_HOOKDATA_XML = "hookdata-xml"   # network: <hookData><network/>[<networkport/>]</hookData>
STDIN_KIND = {
    "daemon": STDIN_NONE,
    "qemu": STDIN_DOMAIN_XML,
    "lxc": STDIN_DOMAIN_XML,
    "libxl": STDIN_DOMAIN_XML,
    "bhyve": STDIN_DOMAIN_XML,
    "network": STDIN_HOOKDATA_XML,
}

# driver -> operation -> (sub-operation, abortable, xml_out, libvirt version that added it)
# "abortable": a non-zero exit makes libvirt fail the operation (for started: stop the guest
# that just started; for reconnect: kill the running guest). Everything else is logged by
# libvirt and ignored. qemu and lxc "release end" get the shutoff reason as extra argument
# since 10.5.0 (unknown, shutdown, destroyed, crashed, migrated, saved, failed,
# "from snapshot" (with a space), daemon); every other event passes "-", except the daemon
# hooks (start, shutdown, SIGHUP).
EVENTS = {
    "daemon": {
        "start": ("-", False, False, "0.8.0"),
        "shutdown": ("-", False, False, "0.8.0"),
        "reload": ("begin", False, False, "0.8.0"),
    },
    "qemu": {
        "prepare": ("begin", True, False, "0.9.0"),
        "start": ("begin", True, False, "0.8.0"),
        "started": ("begin", True, False, "0.9.13"),
        "stopped": ("end", False, False, "0.8.0"),
        "release": ("end", False, False, "0.9.0"),
        "migrate": ("begin", True, True, "0.9.11"),
        "restore": ("begin", True, True, "1.2.9"),
        "reconnect": ("begin", True, False, "0.9.13"),
        "attach": ("begin", True, False, "0.9.13"),   # not emitted since 5.5.0 (virDomainQemuAttach removed)
    },
    "lxc": {
        "prepare": ("begin", True, False, "0.9.13"),
        "start": ("begin", True, False, "0.8.0"),
        "started": ("begin", True, False, "0.9.13"),
        "stopped": ("end", False, False, "0.8.0"),
        "release": ("end", False, False, "0.9.13"),
        "reconnect": ("begin", True, False, "0.9.13"),
    },
    "libxl": {
        "prepare": ("begin", True, False, "2.1.0"),
        "start": ("begin", True, False, "2.1.0"),
        "started": ("begin", True, False, "2.1.0"),
        "stopped": ("end", False, False, "2.1.0"),
        "release": ("end", False, False, "2.1.0"),
        "migrate": ("begin", True, True, "2.1.0"),
        "reconnect": ("begin", True, False, "2.1.0"),
    },
    "bhyve": {
        "prepare": ("begin", True, False, "6.1.0"),
        "start": ("begin", True, False, "6.1.0"),
        "started": ("begin", True, False, "6.1.0"),
        "stopped": ("end", False, False, "6.1.0"),
        "release": ("end", False, False, "6.1.0"),
    },
    "network": {
        "start": ("begin", True, False, "1.2.2"),
        "started": ("begin", True, False, "1.2.2"),
        "stopped": ("end", False, False, "1.2.2"),
        # port-created aborts a new port (guest start, NIC hotplug); re-announced ports at
        # daemon start or qemu reconnect ignore the result. Named plugged/unplugged before 5.5.0.
        "port-created": ("begin", True, False, "1.2.2"),
        "port-deleted": ("begin", False, False, "1.2.2"),
        # A live update succeeds whatever the hook returns (bridge_driver.c networkUpdate).
        "updated": ("begin", False, False, "1.2.2"),
    },
}

# Operation names that older libvirt used for the same event (before 5.5.0 the network port
# operations were "plugged"/"unplugged"). A rule naming either spelling matches both.
OPERATION_ALIASES = {
    "network": {"plugged": "port-created", "unplugged": "port-deleted"},
}

# Modular daemons that host each driver; with the monolithic libvirtd it hosts them all.
DRIVER_DAEMONS = {
    "qemu": "virtqemud",
    "lxc": "virtlxcd",
    "libxl": "virtxend",
    "bhyve": "virtbhyved",
    "network": "virtnetworkd",
}
# Every daemon runs the "daemon" hook from its main(); these are the ones that exist.
DAEMONS = ("libvirtd", "virtqemud", "virtlxcd", "virtxend", "virtbhyved", "virtnetworkd",
           "virtstoraged", "virtnodedevd", "virtnwfilterd", "virtsecretd", "virtinterfaced",
           "virtproxyd", "virtchd", "virtvboxd", "virtvzd", "virtlockd", "virtlogd")


def canonical_operation(driver: str, operation: str) -> str:
    """The current name of an operation (maps old aliases such as network 'plugged')."""
    aliases = OPERATION_ALIASES.get(driver)
    if aliases:
        return aliases.get(operation, operation)
    return operation


def operation_names(driver: str, operation: str) -> tuple:
    """Every spelling libvirt has used for this operation (current name first)."""
    op = canonical_operation(driver, operation)
    names = [op]
    for old, new in OPERATION_ALIASES.get(driver, {}).items():
        if new == op:
            names.append(old)
    return tuple(names)


# A failure of these hooks makes libvirt kill a guest that is already running: "reconnect"
# when the daemon restarts (qemuProcessReconnect, virLXCProcessReconnectDomain, ...), and
# the old "attach". The dispatcher never fails them for an error of its own.
GUEST_KILLING_OPERATIONS = ("reconnect", "attach")
# On those events the entry point does not exec the dispatcher: it waits for it and fails the
# hook only when the dispatcher exits with this status, which means "a user script with
# on_failure: fail failed". Any other outcome (Python missing or crashing, the runtime not
# importable) exits 0, so no fault of ours kills a running guest.
USER_FAILURE_EXIT = 3


def kills_running_guest(driver: str, operation: str) -> bool:
    """Whether a failure of this hook makes libvirt kill a running guest."""
    return driver in GUEST_DRIVERS and operation in GUEST_KILLING_OPERATIONS


def is_abortable(driver: str, operation: str) -> bool:
    """Whether a hook failure makes libvirt fail the operation.

    Unknown operations (a newer libvirt) count as abortable, so a failure is never hidden.
    """
    entry = EVENTS.get(driver, {}).get(canonical_operation(driver, operation))
    return True if entry is None else entry[1]


def reads_stdout(driver: str, operation: str) -> bool:
    """Whether libvirt takes the hook's stdout as replacement XML for this event."""
    entry = EVENTS.get(driver, {}).get(canonical_operation(driver, operation))
    return False if entry is None else entry[2]


def has_stdin_xml(driver: str) -> bool:
    return STDIN_KIND.get(driver, STDIN_DOMAIN_XML) != STDIN_NONE


def owning_daemons(driver: str, modular: bool) -> tuple:
    """The daemons that run a driver's hook: libvirtd, or the modular daemon of the driver."""
    if not modular:
        return ("libvirtd",)
    if driver == "daemon":
        return tuple(d for d in DAEMONS if d not in ("libvirtd", "virtlockd", "virtlogd"))
    return (DRIVER_DAEMONS[driver],)
