#!/usr/bin/env bash
# Start and stop a fleet of podman "hosts" for the virthooks tests. Run as root.
#
#   fleet.sh up [--no-build] NAME=IMAGE...   (re)create one container per NAME from IMAGE, in parallel,
#                                            start its libvirt daemons and wait until they answer.
#                                            IMAGE: bookworm-libvirt | trixie-libvirt | srcbuild | bookworm-bare
#                                            | srcbuild-modular (the srcbuild image run with modular daemons:
#                                            virtlogd + virtqemud + virtnetworkd, no libvirtd)
#                                            | trixie-systemd (the trixie-libvirt image booting systemd as
#                                            PID 1, libvirt started as its units)
#                                            (or localhost/virthooks-<name>, or any other image reference).
#                                            Our images are built first if missing or stale (build-images.sh).
#   fleet.sh down NAME... | --all            remove the containers (--all: every fleet container)
#   fleet.sh services NAME...                (re)start the libvirt daemons of running containers
#   fleet.sh ls                              list fleet containers
#
# Containers: podman run -d --privileged --init --init-path /usr/bin/tini --name NAME --hostname NAME IMAGE
# sleep infinity, on podman's default bridge network (never --network host: a libvirtd in the container
# would then manage the host's networking). Reach them with ansible_connection=containers.podman.podman.
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/env.sh"

log() { printf '[%s +%4ds] %s\n' "$(date +%T)" "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
OURS="bookworm-libvirt trixie-libvirt srcbuild bookworm-bare"

# Variants: an image of ours run in another way (the container gets VIRTHOOKS_FLEET_MODE=<mode>).
variant_mode() {
  case ${1#virthooks-} in srcbuild-modular) echo modular ;; trixie-systemd) echo systemd ;; *) echo "" ;; esac
}
variant_image() {
  case ${1#virthooks-} in srcbuild-modular) echo srcbuild ;; trixie-systemd) echo trixie-libvirt ;; *) echo "$1" ;; esac
}

image_ref() {  # short name -> full reference
  local i; i=$(variant_image "$1")
  case " $OURS " in *" ${i#virthooks-} "*) echo "localhost/virthooks-${i#virthooks-}"; return ;; esac
  case $i in virthooks-*) echo "localhost/$i" ;; *) echo "$i" ;; esac
}

# Runs inside each container: make /dev/kvm usable (no udev in there), start virtlogd + libvirtd,
# wait until libvirtd answers. A host without libvirt just succeeds.
# shellcheck disable=SC2016  # runs in the container's shell
SERVICES_SCRIPT='
set -e
if [ -c /dev/kvm ]; then
  # The node is the container'"'"'s own (runc mknod), so this does not touch the host.
  if getent group kvm >/dev/null; then chgrp kvm /dev/kvm; fi
  chmod 0660 /dev/kvm
fi
if [ "${VIRTHOOKS_FLEET_MODE:-}" = systemd ]; then
  # systemd is PID 1 (trixie-systemd): libvirt runs as its units (socket activated, exits when idle).
  i=0
  until [ -S /run/systemd/private ]; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "systemd (PID 1) has no control socket after 30 s" >&2; exit 1; }
    sleep 0.1
  done
  state=$(systemctl is-system-running --wait 2>&1 || true)
  case $state in running|degraded) ;; *) echo "systemd did not finish booting: $state" >&2; exit 1 ;; esac
  systemctl restart virtlogd.socket libvirtd.service
  virsh=/usr/bin/virsh
elif [ -x /usr/local/sbin/libvirtd ]; then
  # Built from source (prefix /usr/local): no init script; pid files under /var/local/run.
  # Modular mode: one daemon per driver (virtqemud, virtnetworkd) instead of libvirtd.
  daemons="virtlogd libvirtd"
  [ "${VIRTHOOKS_FLEET_MODE:-}" != modular ] || daemons="virtlogd virtqemud virtnetworkd"
  for d in virtlogd libvirtd virtqemud virtnetworkd; do
    pid=$(cat /var/local/run/$d.pid 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; fi
  done
  for d in $daemons; do /usr/local/sbin/$d -d; done
  virsh=/usr/local/bin/virsh
elif [ -x /usr/sbin/libvirtd ]; then
  service virtlogd start >/dev/null
  service libvirtd stop >/dev/null 2>&1 || true
  while pidof libvirtd >/dev/null; do sleep 0.1; done
  service libvirtd start >/dev/null
  virsh=/usr/bin/virsh
else
  echo "no libvirt here"; exit 0
fi
i=0
# (`virsh version` needs a hypervisor driver: network:///system answers `uri` only.)
until $virsh -c qemu:///system version >/dev/null 2>&1 &&
      { [ "${VIRTHOOKS_FLEET_MODE:-}" != modular ] || $virsh -c network:///system uri >/dev/null 2>&1; }; do
  i=$((i + 1)); [ $i -lt 300 ] || { echo "the libvirt daemons do not answer after 30 s" >&2; exit 1; }
  sleep 0.1
done
if [ "${VIRTHOOKS_FLEET_MODE:-}" = modular ]; then
  $virsh -c qemu:///system version --daemon | sed -n "s/^Running against daemon: */modular virtqemud + virtnetworkd /p"
else
  $virsh -c qemu:///system version --daemon | sed -n "s/^Running against daemon: */libvirtd /p"
fi
'

services() {
  local name=$1
  podman exec "$name" /bin/sh -c "$SERVICES_SCRIPT"
}

up_one() {
  local name=$1 image=$2 mode=$3 t0=$SECONDS out
  podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  local boot=(--init --init-path /usr/bin/tini "$image" sleep infinity)
  # systemd as PID 1: podman's systemd mode (tmpfs /run, /tmp, writable cgroups, SIGRTMIN+3 to stop).
  [ "$mode" != systemd ] || boot=(--systemd=always "$image" /lib/systemd/systemd)
  podman run -d --privileged \
    --name "$name" --hostname "$name" --env "VIRTHOOKS_FLEET_MODE=$mode" \
    --label virthooks.fleet=1 --label "virthooks.fleet.image=$image" --label "virthooks.fleet.mode=$mode" \
    "${boot[@]}" >/dev/null
  out=$(services "$name" 2>&1) || { printf '%s\n' "$out" >&2; die "$name: starting the libvirt daemons failed"; }
  log "$name ($image${mode:+, $mode}): up in $((SECONDS - t0))s: $out"
}

cmd=${1:-}; shift || true
[ "$(id -u)" = 0 ] || die "run as root (rootful podman)"
command -v podman >/dev/null || die "podman is missing (tests/setup/debian-packages.txt)"
[ -x /usr/bin/tini ] || die "/usr/bin/tini is missing (apt-get install tini)"
case $cmd in
  up)
    build=1
    [ "${1:-}" = --no-build ] && { build=0; shift; }
    [ $# -gt 0 ] || die "usage: fleet.sh up NAME=IMAGE..."
    names=(); images=(); modes=(); ours=()
    for spec in "$@"; do
      [[ $spec == *=* ]] || die "expected NAME=IMAGE, got $spec"
      names+=("${spec%%=*}"); images+=("$(image_ref "${spec#*=}")"); modes+=("$(variant_mode "${spec#*=}")")
      case ${images[-1]} in localhost/virthooks-*) ours+=("${images[-1]}") ;; esac
    done
    if [ "$build" = 1 ] && [ ${#ours[@]} -gt 0 ]; then
      # shellcheck disable=SC2046
      "$FLEET_DIR/build-images.sh" $(printf '%s\n' "${ours[@]}" | sort -u)
    fi
    pids=()
    for i in "${!names[@]}"; do ( up_one "${names[$i]}" "${images[$i]}" "${modes[$i]}" ) & pids+=($!); done
    rc=0
    for i in "${!pids[@]}"; do wait "${pids[$i]}" || { rc=1; log "FAILED: ${names[$i]}"; }; done
    [ "$rc" = 0 ] && log "fleet up: ${names[*]} (${SECONDS}s)"
    exit "$rc"
    ;;
  down)
    if [ "${1:-}" = --all ]; then
      mapfile -t names < <(podman ps -a -q --filter label=virthooks.fleet=1)
    else
      names=("$@")
    fi
    present=()
    for n in "${names[@]}"; do podman container exists "$n" && present+=("$n"); done
    [ ${#present[@]} -gt 0 ] || { log "fleet down: nothing to remove"; exit 0; }
    podman rm -f -t 0 "${present[@]}" >/dev/null 2>&1 || true
    for n in "${present[@]}"; do
      ! podman container exists "$n" || die "$n is still there"
    done
    log "fleet down: removed ${present[*]} (${SECONDS}s)"
    ;;
  services)
    for n in "$@"; do services "$n"; done
    ;;
  ls)
    podman ps -a --filter label=virthooks.fleet=1 --format '{{.Names}}\t{{.Image}}\t{{.Status}}'
    ;;
  *)
    sed -n '2,15p' "$0"; exit 2
    ;;
esac
