#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: hook_runtime
short_description: Install the virthooks dispatcher, a generation of rules and scripts, and the libvirt hook entry points
version_added: 0.1.0
description:
  - Installs or upgrades the virthooks hook runtime in the libvirt hooks directory of a host
    (C(<sysconfdir>/libvirt/hooks/virthooks/)), deploys O(rules) and O(scripts) as one
    I(generation), and writes an entry point C(hooks/<driver>) for each driver in O(drivers).
  - A generation (C(hooks/virthooks/generations/<id>/) with C(config.json), C(scripts/) and
    C(meta.json)) is written whole, then made current by one rename of the symlink
    C(hooks/virthooks/current). A hook call reads its rules and runs its scripts from the
    generation that was current when it started, so it sees the old deploy or the new one,
    never a mix. A run that changes nothing makes no generation. The newest
    O(generations_keep) generations stay on the host for O(state=rollback) and
    C(virthooks rollback).
  - Entry points are a few lines of POSIX sh with a prefilter built from the rules, so that
    events no rule can match end without starting Python; the others are handed to the
    dispatcher, which runs the matching scripts with timeouts, ordering and a failure policy.
  - Every file is replaced atomically (temporary file, fsync, rename in the same directory);
    the runtime library lives in a directory named after its content and is switched with a
    symlink. The library is written first, then the generation, then the entry points it needs,
    then the switch, then the removal of entry points it no longer needs, so a run interrupted at
    any point leaves working hooks behind. Hosts deployed before generations are converted in
    place on the first run, with the same guarantee.
  - Entry points of drivers that are no longer listed are removed. libvirt only notices an
    entry point that was added or removed when it rescans its hooks (daemon start or SIGHUP);
    the module reports exactly which ones changed in RV(added) and RV(removed) so that the caller
    can reload the right daemons.
  - A hook file already at C(hooks/<driver>) that virthooks did not write is never overwritten
    silently. With O(foreign_hooks=adopt) it is kept in place under a name libvirt does not call,
    C(hooks/<driver>.virthooks-adopted) (a symlink stays a symlink to the same target), and run
    first by the dispatcher for every event of its driver, from there, so a hook that finds its
    files beside its own path keeps finding them; with O(foreign_hooks=fail) the module fails and
    names it. With O(state=absent) adopted hooks are put back exactly as they were.
  - Where SELinux is enabled, written files get their default context (as C(restorecon) would).
  - Before a new generation is made current, every script in it goes through its interpreter's syntax
    check on this host (C(sh -n) with this host's C(/bin/sh), C(bash -n), C(compile()) by its Python,
    C(perl -c) for perl scripts only, each with a timeout); one that fails leaves the host on its current
    generation and the error names the script and the line. Other interpreters are not checked (a warning
    says so).
  - A run that leaves the host as asked writes C(hooks/virthooks/.stamp.json) (mode 0600), which holds a
    digest of the request (the options but O(deployer), the hooks directory, the entry points' Python, the
    collection's code), a digest of what the plan reads on the host (the type, mode, owner, size, times and
    inode of every entry under C(hooks/virthooks/), of the entry points and adopted hooks, of the CLI link;
    whether each script's interpreter can be run) and the run's result. It is written only when a plan made
    on that very state changes nothing. A later run with the same request on the same files returns that
    result without planning; anything edited, chmod'ed, replaced, added or removed (a file's ctime changes
    with each), another request or version of the collection, plans again. A stamp that another user could
    have written is ignored.
author:
  - virthooks maintainers (@virthooks)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - virthooks.libvirt.paths
  - virthooks.libvirt.paths.writes
  - virthooks.libvirt.scripts
attributes:
  diff_mode:
    support: full
    details: The diff shows one line per rule or script that changes, the text of each changed rule and
      script, the entry points and the CLI launcher in full, and summarises the runtime library files;
      scripts' secrets only by name, each value as C(<redacted>).
options:
  state:
    description:
      - V(present) installs the runtime, a generation and the entry points; V(absent) removes the
        entry points, puts adopted hooks back, and removes C(hooks/virthooks/) with every
        generation in it; V(rollback) makes O(generation) (by default the one before the current
        one) current again and puts the entry points back as they were for it.
    type: str
    choices: [present, absent, rollback]
    default: present
  generation:
    description:
      - With O(state=rollback), the generation to make current (an id as RV(generation) returns
        it). V("") means the one that was current before the current one (the one its deploy replaced,
        never a generation a killed deploy wrote and never switched to).
    type: str
    default: ""
  purge:
    description:
      - Leave out of the new generation every script of the current one that O(scripts) does not
        declare present. Without it, such scripts are carried over (and run only if a rule names them).
      - When O(scripts) is not given at all, the scripts of the current generation are kept as they are.
    type: bool
    default: false
  deployer:
    description:
      - Who deployed, recorded in the generation's C(meta.json) and shown by C(virthooks generations).
    type: str
    default: ""
  drivers:
    description:
      - The hook drivers that get an entry point. Our entry points for other drivers are removed.
      - Host drop-in rules (C(hooks/virthooks/rules.d/*.json)) run only for these drivers; the module warns,
        naming the drop-in, when one has rules for a driver that is not listed.
    type: list
    elements: str
    choices: [daemon, qemu, lxc, libxl, bhyve, network]
    default: []
  rules:
    description:
      - The rules of C(config.json), each naming a script of the generation (C(scripts/<name>),
        from O(scripts)) or an absolute path.
      - Keys and defaults are those of the config format (docs/runtime.md, "Runtime configuration"),
        namely C(name), C(script), C(driver), C(objects),
        C(operations), C(suboperations), C(extras), C(daemons), C(xpath), C(namespaces),
        C(timeout), C(on_failure), C(order), C(enabled).
      - Rules are validated before anything is written; an unknown driver or operation, a
        duplicate name or a bad value fails the task and names the rule.
    type: list
    elements: dict
    default: []
  log:
    description:
      - The dispatcher's log settings (keys C(file), C(max_bytes), C(backups), C(syslog),
        C(output_bytes)); unset keys keep their defaults (C(/var/log/libvirt/virthooks.jsonl),
        1 MiB, 3 backups, syslog for failures, 2048 bytes of script output).
      - In a sandbox (O(sandbox)), C(file) defaults to C(var/log/libvirt/virthooks.jsonl) under O(sandbox.dir)
        and C(syslog) to V(none), so that the sandbox's hooks never write to the real host's log or syslog.
    type: dict
    default: {}
  tree:
    description:
      - Settings of the per-guest tree C(hooks/<driver>.d/<object>/<operation>/<sub-operation>/)
        (keys C(enabled), C(timeout), C(on_failure), C(order)).
    type: dict
    default: {}
  kill_grace:
    description:
      - Seconds between SIGTERM and SIGKILL when a script's timeout expires.
    type: float
    default: 2
  foreign_hooks:
    description:
      - What to do with a hook file at C(hooks/<driver>) that virthooks did not write.
      - V(fail) stops before changing anything and names the file; V(adopt) keeps it and runs it
        through the dispatcher (first, for every event of its driver, timeout 300 s).
      - A file or a symlink to a file can be adopted; the dispatcher must be able to trust it (owned
        by root and not writable by others, as every directory on the way), or the module fails and
        says why.
      - V(adopt) that adopts nothing (no such hook, or one for a driver that gets no entry point)
        says so in a warning.
    type: str
    choices: [fail, adopt]
    default: fail
  foreign_on_failure:
    version_added: 0.2.0
    description:
      - When a failure of an adopted hook fails the hook call.
      - V(abortable) where libvirt aborts what it is doing for it (C(prepare), C(start), C(migrate),
        C(restore) ... C(begin)), as before adoption; on C(reconnect) and C(attach), where libvirt
        would kill the running guest, and on events libvirt cannot abort, the failure is logged and ignored.
      - V(fail) on every event, as libvirt itself does (a failed C(reconnect) then kills the guest).
    type: str
    choices: [abortable, fail]
    default: abortable
  python:
    description:
      - The Python interpreter the entry points use to run the dispatcher (3.9 or later), and the library
        launchers of O(scripts) (O(scripts[].launcher)).
      - The default V("") uses the OS family's usual Python 3 with O(detect) (V(/usr/local/bin/python3) on
        FreeBSD, V(/run/current-system/sw/bin/python3) on NixOS, else V(/usr/bin/python3)), and without it the
        interpreter this module runs with, or V(/usr/bin/python3) when O(root) is set.
    type: path
    default: ""
  detect:
    version_added: 0.3.0
    description:
      - Describe libvirt on the host first, as M(virthooks.libvirt.hooks_info) does (the same code), and
        return the description as RV(libvirt), so that a deploy needs this one module call (the role
        C(virthooks.libvirt.libvirt_hooks) makes no other).
      - The description gives the hooks directory when O(hooks_dir) is empty and the Python when O(python) is.
      - A host where no libvirt daemon is installed, and for which neither O(root), O(sysconfdir) nor
        O(hooks_dir) is given, is left as it is, with a warning; C(installed) in RV(libvirt) is V(false).
      - The description is of the host before the run (as M(virthooks.libvirt.hooks_info) run just before
        would give it).
    type: bool
    default: false
  tree_drivers:
    version_added: 0.3.0
    description:
      - With O(state=present), every driver whose per-guest tree
        (C(hooks/<driver>.d/<object>/<operation>/<sub-operation>/)) holds files gets an entry point too, as if
        listed in O(drivers), so the tree keeps running without a rule of its own.
    type: bool
    default: false
  remove_if_empty:
    version_added: 0.3.0
    description:
      - With O(state=present), when there is nothing to deploy (no O(rules), and no driver in O(drivers), those of
        O(tree_drivers) counted), remove everything as O(state=absent) does.
    type: bool
    default: false
  validate:
    version_added: 0.3.0
    description:
      - With O(state=present), after a run that changed the host (not in check mode, not under O(root)), check
        the new generation as the host will run it, with the CLI just installed (C(virthooks validate), which checks the
        configuration, every script and its interpreter, the entry points), and fail, naming what it found, when
        the check does. The deploy is not undone then; RV(generation) and RV(previous_generation) are returned with
        the failure, for a rollback (O(state=rollback)). RV(validated) says whether the check ran and passed.
      - The role C(virthooks.libvirt.libvirt_hooks) asks for it, which spares it a module call per host.
    type: bool
    default: false
  cli_link:
    description:
      - Where to link the operator CLI C(virthooks), for example V(/usr/local/bin/virthooks), as
        the host sees it; it is created under O(root), or under O(sandbox.dir) for a sandbox. V("") links nothing.
    type: path
    default: ""
notes:
  - With O(root) set, the files are written under it but name paths as the host will see them
    (without O(root)), so an image built this way works once booted.
  - Changing rules or scripts needs no daemon restart; the dispatcher reads the current
    generation on every call. Adding or removing an entry point does (see RV(added), RV(removed)).
seealso:
  - module: virthooks.libvirt.hooks_info
  - module: virthooks.libvirt.hook
"""

EXAMPLES = r"""
- name: Install the runtime with one script, its rule and a qemu entry point
  virthooks.libvirt.hook_runtime:
    drivers: [qemu]
    scripts:
      - name: pin-cpus
        content: |
          #!/bin/sh
          exec /usr/local/sbin/pin-cpus "$1"
    rules:
      - name: pin-cpus
        script: scripts/pin-cpus
        objects: ["win10", "db-*"]
        operations: [prepare]
        suboperations: [begin]
        timeout: 20
  register: runtime

- name: Reload libvirtd when an entry point appeared or disappeared
  ansible.builtin.command: pkill -HUP -x libvirtd
  when: runtime.added or runtime.removed
  changed_when: true

- name: Take over an existing hand-written qemu hook instead of failing
  virthooks.libvirt.hook_runtime:
    drivers: [qemu]
    foreign_hooks: adopt

- name: Find libvirt, install for its OS family's Python and get the description back, in one call
  virthooks.libvirt.hook_runtime:
    detect: true
    tree_drivers: true
    drivers: [qemu]
  register: runtime

- name: Show which daemons run
  ansible.builtin.debug:
    msg: "{{ runtime.libvirt.daemons | dict2items | selectattr('value.running') | map(attribute='key') }}"

- name: Go back to the generation before the current one
  virthooks.libvirt.hook_runtime:
    state: rollback

- name: Remove everything virthooks installed (foreign hooks are put back)
  virthooks.libvirt.hook_runtime:
    state: absent
"""

RETURN = r"""
validated:
  description: Whether O(validate) checked the new generation with the installed CLI, and it passed.
  returned: always
  type: bool
  sample: true
  version_added: 0.3.0
hooks_dir:
  description: The hooks directory that was managed.
  returned: always
  type: str
  sample: /etc/libvirt/hooks
entry_points:
  description: Drivers that have a virthooks entry point after the run.
  returned: always
  type: list
  elements: str
  sample: [qemu, network]
added:
  description: Drivers whose entry point was added (libvirt needs a rescan to notice).
  returned: always
  type: list
  elements: str
  sample: [network]
removed:
  description: Drivers whose entry point was removed (or whose adopted hook was put back).
  returned: always
  type: list
  elements: str
  sample: []
adopted:
  description: Drivers whose foreign hook was adopted in this run.
  returned: always
  type: list
  elements: str
  sample: []
generation:
  description: The generation current after the run (V("") after O(state=absent)).
  returned: always
  type: str
  sample: 20261129T212300Z-3f2a9c0d11e4b7a5
previous_generation:
  description: The generation that was current before the run (V("") on a first deploy).
  returned: always
  type: str
  sample: 20261128T101500Z-0b1c2d3e4f5a6b7c
scripts:
  description: What the run did to the scripts, by name.
  returned: when O(state=present)
  type: dict
  contains:
    added:
      description: Scripts new in this generation.
      type: list
      elements: str
    updated:
      description: Scripts whose content changed.
      type: list
      elements: str
    removed:
      description: Scripts left out of this generation.
      type: list
      elements: str
    unchanged:
      description: Scripts carried over as they were.
      type: list
      elements: str
summary:
  description: With O(state=rollback), one line per rule or script that differs between the generations.
  returned: when O(state=rollback)
  type: list
  elements: str
  sample: ["rule check-gpu: added", "script check-gpu: added"]
runtime_version:
  description: Content digest of the runtime library in use after the run.
  returned: always
  type: str
  sample: 3f2a9c0d11e4b7a5
libvirt:
  description:
    - With O(detect), the host as it was before the run, described as M(virthooks.libvirt.hooks_info)
      describes it (RV(virthooks.libvirt.hooks_info#module:libvirt) there lists every key), but for C(files),
      the listing of every file under the hooks directory, which only M(virthooks.libvirt.hooks_info) returns
      (most of the description, tens of kilobytes a host with a few generations, carried to the controller on
      every run for nothing the deploy needs there).
  returned: when O(detect)
  type: dict
  sample: {"installed": true, "version": "9.0.0", "os_family": "Debian", "hooks_dir": "/etc/libvirt/hooks",
           "mode": "monolithic", "init_system": "systemd"}
changes:
  description: One line per file operation that was (or, in check mode, would be) carried out.
  returned: always
  type: list
  elements: str
  sample: ["write /etc/libvirt/hooks/virthooks/config.json (content)"]
"""

import os
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.virthooks.libvirt.plugins.module_utils.detect import (
    DetectionError,
    detect,
    inventory_hooks,
    path_argument_spec,
    platform_python,
    resolve_hooks_dir,
    sandbox_dir,
    tree_drivers,
)
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.fileops import host_path, under
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.events import DRIVERS
from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.layout import CLI_FILE, OWN_DIR
from ansible_collections.virthooks.libvirt.plugins.module_utils.scripts import SCRIPTS_ARGUMENT_SPEC, declared_scripts
from ansible_collections.virthooks.libvirt.plugins.module_utils import stamp

# The installer (and the rules, generations and entry points it imports) is imported by the runs that plan: a
# re-run the stamp shows to change nothing compiles none of it (see module_utils/stamp.py).

ARGUMENT_SPEC = dict(
    SCRIPTS_ARGUMENT_SPEC,
    hooks_dir=dict(type="path", default=""),
    state=dict(type="str", choices=["present", "absent", "rollback"], default="present"),
    generation=dict(type="str", default=""),
    drivers=dict(type="list", elements="str", choices=list(DRIVERS), default=[]),
    rules=dict(type="list", elements="dict", default=[]),
    purge=dict(type="bool", default=False),
    deployer=dict(type="str", default=""),
    log=dict(type="dict", default={}),
    tree=dict(type="dict", default={}),
    kill_grace=dict(type="float", default=2),
    foreign_hooks=dict(type="str", choices=["fail", "adopt"], default="fail"),
    foreign_on_failure=dict(type="str", choices=["abortable", "fail"], default="abortable"),
    python=dict(type="path", default=""),
    cli_link=dict(type="path", default=""),
    detect=dict(type="bool", default=False),
    tree_drivers=dict(type="bool", default=False),
    remove_if_empty=dict(type="bool", default=False),
    validate=dict(type="bool", default=False),
)


class Target:
    """Where and with what the run works: the hooks directory, the entry points' Python, and the host's
    description when O(detect) asked for one (else None)."""
    __slots__ = ("hooks_dir", "python", "info", "deployed")

    def __init__(self, hooks_dir: str, python: str, info):
        self.hooks_dir = hooks_dir
        self.python = python
        self.info = info
        self.deployed = None        # state=present: what remember() needs (installer, spec, interpreters, host digest, plan)


def state_rollback(module, target: Target) -> dict:
    """Make an earlier generation current again, entry points as they were for it."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.generations import GenerationError
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.rollback import (
        RollbackError, apply_rollback, plan_rollback)
    from ansible_collections.virthooks.libvirt.plugins.module_utils.selinux import restore_contexts
    hooks_dir = target.hooks_dir
    try:
        plan = plan_rollback(hooks_dir, module.params["generation"], host_path(module.params["root"], hooks_dir))
        if not module.check_mode:
            apply_rollback(plan)
            restore_contexts(module, [path for path, _text in plan["writes"]], module.params["root"])
    except (RollbackError, GenerationError, OSError) as exc:
        module.fail_json(msg="%s: %s" % (hooks_dir, exc), hooks_dir=hooks_dir)
    return dict(changed=True, hooks_dir=hooks_dir, generation=plan["target"],
                previous_generation=plan["current"], added=plan["added"], removed=plan["removed"],
                adopted=[], summary=plan["summary"], entry_points=[], runtime_version="", validated=False,
                changes=["switch to generation %s" % plan["target"]], notes=plan["notes"])


def state_present(module, target: Target) -> dict:
    """Install the runtime, a generation of the rules and scripts, and the entry points."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.install import DeploySpec
    params = module.params
    scripts = None
    if params["scripts"] is not None:
        try:
            scripts = declared_scripts(params["scripts"], target.python)
        except ValueError as exc:
            module.fail_json(msg=str(exc))
    spec = DeploySpec.from_params(params, scripts, params_cli_link(params))
    interpreters = stamp.interpreters_of(scripts)
    before = host_digest(module, target, spec.cli_link, interpreters)
    installer, plan, diff = carry_out(module, target, lambda inst: inst.plan_deploy(spec))
    target.deployed = (installer, spec, interpreters, before, plan)
    return present_result(module, target, installer, plan, diff)


def present_result(module, target: Target, installer, plan, diff) -> dict:
    result = plan_result(target.hooks_dir, plan, diff, sorted(set(module.params["drivers"]), key=DRIVERS.index))
    result.update(runtime_version=installer.digest, scripts=plan.scripts._asdict())
    return result


def host_digest(module, target: Target, cli_link: str, interpreters: list) -> str:
    """The stamp's digest of the host's state as a deploy reads it ('' when it cannot be read)."""
    try:
        return stamp.host_digest(target.hooks_dir, cli_link, interpreters, module.params["root"])
    except (OSError, ValueError):
        return ""


def recall(module, target: Target):
    """The result of a re-run that changes nothing, from the stamp of the run that left the host so (None
    when there is none for this request and this host state: then the run plans)."""
    found = stamp.recall(module.params, target.hooks_dir, target.python, params_cli_link(module.params))
    if found is None:
        return None
    for warning in found.get("warnings") or []:
        module.warn(warning)
    return dict(found["result"])


def remember(module, target: Target, result: dict) -> None:
    """Write the stamp when this run leaves the host as its request wants it: a plan made on the host as it
    is now (the one this run made, or, after a change, a new one) changes nothing, and the host did not change
    while it was made. A stamp that cannot be written is no failure: the next run plans."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.install import InstallError
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.generations import GenerationError
    installer, spec, interpreters, before, plan = target.deployed
    try:
        if plan.changes:
            before = host_digest(module, target, spec.cli_link, interpreters)
            plan = installer.plan_deploy(spec)
            if plan.changes:
                return
            result = present_result(module, target, installer, plan, None)
        after = host_digest(module, target, spec.cli_link, interpreters)
        if not before or before != after:
            return
        kept = {k: v for k, v in result.items() if k not in ("libvirt", "diff")}
        stamp.write_stamp(module.params, target.hooks_dir, target.python, after, interpreters, kept, list(plan.warnings))
    except (InstallError, GenerationError, OSError, ValueError):
        return


def validate_installed(module, hooks_dir: str, result: dict) -> None:
    """O(validate): the CLI just installed checks the new generation as the host runs it; a problem fails the
    module with the run's result (generation, previous_generation, the description: what a rollback needs)."""
    cli = os.path.join(hooks_dir, OWN_DIR, CLI_FILE)
    # (the scripts of a generation this run made went through the syntax gate a moment ago: not again)
    fresh = result["generation"] != result["previous_generation"]
    rc, out, err = module.run_command([cli, "--hooks-dir", hooks_dir, "validate"] + (["--skip-syntax"] if fresh else []))
    if rc != 0:
        found = "\n".join(text.strip() for text in (out, err) if text.strip())
        module.fail_json(msg="%s: the new generation does not validate on this host (%s validate, exit %d): %s"
                         % (hooks_dir, cli, rc, found or "no output"), **result)
    result["validated"] = True


def state_absent(module, target: Target) -> dict:
    """Remove what virthooks installed, adopted hooks put back."""
    cli_link = params_cli_link(module.params)
    installer, plan, diff = carry_out(module, target,
                                      lambda inst: inst.plan_removal(cli_link, module.params["foreign_hooks"]))
    remaining = [d for d in installer.installed_entry_points() if d not in plan.removed]
    return plan_result(target.hooks_dir, plan, diff, remaining if module.check_mode else [])


def params_cli_link(params: dict) -> str:
    """The CLI link as this machine sees it: under root, or inside a sandbox ('' = none), as an image's
    goes under root."""
    link_root = params["root"] or sandbox_dir(params["sandbox"])
    return under(link_root, params["cli_link"]) if params["cli_link"] else ""


def carry_out(module, target: Target, planner) -> tuple:
    """(installer, plan, diff): the plan planner(installer) makes, applied unless in check mode, and its
    diff (made before: the generation it replaces may be pruned); a failure fails the module naming the
    hooks directory."""
    from ansible_collections.virthooks.libvirt.plugins.module_utils.install import InstallError, RuntimeInstaller
    from ansible_collections.virthooks.libvirt.plugins.module_utils.runtime.generations import GenerationError
    root = module.params["root"]
    hooks_dir = target.hooks_dir
    try:
        installer = RuntimeInstaller(hooks_dir, target.python, root=root)
        plan = planner(installer)
        diff = plan.diff(hooks_dir) if module._diff and plan.changes else None
        if plan.changes and not module.check_mode:
            from ansible_collections.virthooks.libvirt.plugins.module_utils.selinux import restore_contexts
            installer.apply(plan)
            restore_contexts(module, [c.path for c in plan.changes], root)
    except (InstallError, GenerationError, OSError) as exc:
        module.fail_json(msg="%s: %s" % (hooks_dir, exc), hooks_dir=hooks_dir)
    for warning in plan.warnings:
        module.warn(warning)
    return installer, plan, diff


def plan_result(hooks_dir: str, plan, diff, entry_points: list) -> dict:
    """The module's result for a deploy or a removal."""
    result = dict(changed=bool(plan.changes), validated=False, hooks_dir=hooks_dir, entry_points=entry_points,
                  added=plan.added, removed=plan.removed, adopted=plan.adopted,
                  generation=plan.generation, previous_generation=plan.previous, runtime_version="",
                  changes=plan.describe())
    if diff is not None:
        result["diff"] = diff
    return result


STATES = {"present": state_present, "absent": state_absent, "rollback": state_rollback}


def entry_python(params: dict, info) -> str:
    """The Python of the entry points: O(python), else the OS family's (O(detect)), else this module's
    (/usr/bin/python3 for an image root)."""
    if params["python"]:
        return params["python"]
    if info is not None:
        return platform_python(info)
    return "/usr/bin/python3" if params["root"].rstrip("/") else sys.executable


def libvirt_missing(params: dict, info) -> bool:
    """Whether O(detect) found no libvirt on a host the caller gave no paths for: then nothing is done."""
    return (info is not None and not info["installed"]
            and not (params["root"] or params["sysconfdir"] or params["hooks_dir"]))


def find_target(module) -> Target:
    """The hooks directory (given or detected), the host's description (O(detect)) and the entry points'
    Python; a host without libvirt (libvirt_missing) ends the module unchanged."""
    params = module.params
    try:
        info = (detect(root=params["root"], sysconfdir=params["sysconfdir"], sandbox=params["sandbox"])
                if params["detect"] else None)
        if libvirt_missing(params, info):
            import platform
            module.warn("libvirt is not installed on %s: no libvirtd or virt*d daemon was found, so no hooks are"
                        " deployed there (give sysconfdir, root or hooks_dir to deploy anyway)" % platform.node())
            module.exit_json(changed=False, hooks_dir=info["hooks_dir"], entry_points=[], added=[], removed=[],
                             adopted=[], generation="", previous_generation="", runtime_version="", changes=[], validated=False,
                             libvirt=described(module, info))
        hooks_dir = resolve_hooks_dir(params["hooks_dir"] or (info or {}).get("hooks_dir", ""), params["root"],
                                      params["sysconfdir"], params["sandbox"])
    except DetectionError as exc:
        module.fail_json(msg=str(exc))
    return Target(hooks_dir, entry_python(params, info), info)


def described(module, info: dict) -> dict:
    """The host's description as hooks_info returns it but for its files (the hooks directory's listing, which
    the detection needs on the host and the controller does not), its warnings given to Ansible."""
    info = dict(info)
    info.pop("files", None)
    for warning in info.pop("warnings", []):
        module.warn(warning)
    return info


def sandbox_log(params: dict) -> None:
    """O(log) of a sandbox: its own file, no syslog, unless set."""
    sandbox = sandbox_dir(params["sandbox"])
    if sandbox:
        params["log"] = dict({"file": sandbox + "/var/log/libvirt/virthooks.jsonl", "syslog": "none"}, **params["log"])


def settle_drivers(module, target: Target) -> str:
    """The state to carry out: O(drivers) gets the drivers of the per-guest tree (O(tree_drivers)), and
    O(state=present) with nothing to deploy becomes O(state=absent) under O(remove_if_empty)."""
    params = module.params
    if params["tree_drivers"] and params["state"] == "present":
        files = target.info["files"] if target.info is not None else inventory_hooks(target.hooks_dir)
        params["drivers"] = list(dict.fromkeys(params["drivers"] + tree_drivers(files)))
    if params["state"] == "present" and params["remove_if_empty"] and not params["rules"] and not params["drivers"]:
        return "absent"
    return params["state"]


def main():
    module = AnsibleModule(argument_spec=dict(**path_argument_spec(), **ARGUMENT_SPEC), supports_check_mode=True)
    target = find_target(module)
    sandbox_log(module.params)
    state = settle_drivers(module, target)
    result = recall(module, target) if state == "present" else None
    if result is None:
        result = STATES[state](module, target)
    if target.info is not None:
        result["libvirt"] = described(module, target.info)
    params = module.params
    if (params["validate"] and state == "present" and result["changed"] and not module.check_mode
            and not params["root"].rstrip("/")):
        validate_installed(module, target.hooks_dir, result)
    if target.deployed is not None and not module.check_mode and not params["root"].rstrip("/"):
        remember(module, target, result)        # not into an image: its copies have other inodes
    module.exit_json(**result)


if __name__ == "__main__":
    main()
