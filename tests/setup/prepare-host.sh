#!/usr/bin/env bash
# Installs the Debian packages the test suite needs and starts the services it uses.
# Idempotent and quick when everything is already there; run by `make test` as root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t pkgs < <(grep -v '^\s*#' "$here/debian-packages.txt" | awk 'NF{print $1}')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "prepare-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  # policy-rc.d keeps package scripts from starting daemons behind our back; we start them below.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libvirt's LXC driver on a hybrid cgroup host (v1 controllers, cgroup2 at /sys/fs/cgroup/unified, no
# systemd): libvirt counts cgroup v2 as in use when that mount lists any controller (here hugetlb, the only
# one no v1 hierarchy took), and libvirt_lxc then fails every start with "Unable to create directory
# /sys/fs/cgroup/unified". Mount such controllers as v1 hierarchies, as systemd does on a v1 host: cgroup2
# is left without controllers and libvirt uses v1 only. Kernel-wide, and a no-op when already done.
unified=/sys/fs/cgroup/unified
if [ "$(stat -fc %T /sys/fs/cgroup)" = tmpfs ] && [ -r "$unified/cgroup.controllers" ]; then
  for c in $(cat "$unified/cgroup.controllers"); do
    mkdir -p "/sys/fs/cgroup/$c"
    mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
    echo "prepare-host: cgroup controller $c mounted as v1 at /sys/fs/cgroup/$c (libvirt LXC)"
  done
fi
