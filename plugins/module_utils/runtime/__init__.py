# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The virthooks hook runtime: what runs on the hypervisor, and only that.

This folder is installed whole on every host, as ``hooks/virthooks/lib/<digest>/virthooks_runtime/``:
its listing is what the host gets. Nothing here imports Ansible or the installer (a test checks
both), and each module imports only what its own call needs: the dispatcher sits on every guest
start.

Run on every hook call (the dispatcher's hot path):

- ``dispatch``  one libvirt hook call: match the rules, run the scripts, apply the policy
- ``rules``     config.json: format, validation, matching, the per-guest tree
- ``ruleindex`` config.json's index: which rules an event reads (500 rules cost what one does)
- ``configcache`` config.marshal: config.json parsed and validated at deploy, read without JSON
- ``events``    libvirt's hook events: what can abort, what reads XML, who calls
- ``entrypoint`` the sh files libvirt runs (``hooks/<driver>``) and their prefilter
- ``trust``     whether root may run a file (the whole path to it)
- ``proctree``  finding and stopping everything a script started (timeouts, signals)
- ``xmlcond``   XPath conditions on the XML libvirt passes
- ``runlog``    the JSON-lines log and syslog
- ``minijson``  JSON without importing ``json`` (start-up cost)
- ``layout``    names of the files under the hooks directory
- ``hostos``    ``os`` without importing ``os`` (a tenth of a hook call at start-up)
- ``current``   the generation one call reads (``current`` resolved once, under a shared lock)

Run by the operator (``virthooks``, the CLI) and by the modules, never on a hook call:

- ``generations`` the generations a deploy writes, the current one, the deploy lock, pruning
- ``cli``       ``virthooks``: the table of subcommands, the check of ``commands/``, the dispatch
- ``commands/`` one module per subcommand (``virthooks <name>``): ``list_rules`` (list),
  ``simulate``, ``validate``, ``log``, ``list_generations`` (generations), ``roll_back``
  (rollback), ``metrics``, ``import_setup`` (import); and ``util``, what they share (output,
  one-line errors, events from argv)
- ``rollback``  making an older generation current again
- ``syntax``    the deploy's syntax gate, run again by ``validate``
- ``fileops``   atomic file writes
- ``importers`` a peer's hook setup (per-guest tree, mrjk, saschpe) as role variables
- ``logread``   reading the log and its rotated backups after the fact
- ``logstats``  statistics of the log over a time window (``hooks_stats``)
- ``logmetrics`` cumulative Prometheus metrics of the log (``virthooks metrics``)

Run as a hook script of its own (a library block's launcher), never by the dispatcher:

- ``launcher``  the launchers of the library's blocks, and what they run (never the dispatcher)
- ``library/``  the library of ready-made hooks, one module per block (``libvirt_hooks_library``):
  ``cpu_isolation``, ``disk_snapshot``, ``hugepages``, ``notify``, ``port_forward``, ``vfio_bind``,
  and ``common``, what the blocks share
"""

VERSION = "0.2.0"  # the collection's version (galaxy.yml); a test ties them


def _entry_modules():  # pragma: no cover - never called
    """The host runs the dispatcher, the CLI and the library's launchers; every other module of this
    package is reached from them (the CLI's subcommands and the library's blocks by name, at run time,
    once their folder is checked), except logstats (the hooks_stats module's, which the CLI does not
    use). Ansible's module packer ships what is imported (nested imports too), so naming them here puts
    the whole package into the payload of the modules that install it."""
    from . import cli, dispatch, launcher, logstats
    from .commands import (import_setup, list_generations, list_rules, log, metrics, roll_back, simulate, util,
                           validate)
    from .library import common, cpu_isolation, disk_snapshot, hugepages, notify, port_forward, vfio_bind
    return (cli, dispatch, launcher, logstats, import_setup, list_generations, list_rules, log, metrics, roll_back,
            simulate, util, validate, common, cpu_isolation, disk_snapshot, hugepages, notify, port_forward, vfio_bind)
