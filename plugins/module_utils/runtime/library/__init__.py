# -*- coding: utf-8 -*-
# Copyright: virthooks contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The library of ready-made hooks (the role's ``libvirt_hooks_library``): one module per block.

A block's step runs as a script of its own, never inside the dispatcher: a generation holds, for
each step, a launcher of a few lines (``launcher.render``) that imports the block from the installed
runtime (``runtime/launcher.py`` checks this folder first), and the block's parameters in the
step's root-only secret file ``PARAMS``. Nothing on the dispatcher's path imports this package.

- ``common``         one hook call, state files, failures, undo, commands (shared by every block)
- ``port_forward``   nftables DNAT from host ports to a guest
- ``hugepages``      the huge pages a guest needs, reserved and given back
- ``disk_snapshot``  a qcow2 snapshot of each disk before a start, the newest kept
- ``cpu_isolation``  host processes kept off a guest's pinned CPUs
- ``vfio_bind``      a guest's unmanaged PCI devices moved to vfio-pci and back
- ``notify``         the event POSTed to a webhook
"""

BLOCKS = ("port_forward", "hugepages", "disk_snapshot", "cpu_isolation", "vfio_bind", "notify")
