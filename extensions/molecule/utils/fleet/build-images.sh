#!/usr/bin/env bash
# Builds the fleet's podman images (idempotent, cached). Run as root.
#
#   build-images.sh [--force] [IMAGE...]      IMAGE: bookworm-libvirt trixie-libvirt srcbuild bookworm-bare
#                                             (or localhost/virthooks-<name>); default: all four
#
# Each image carries the label virthooks.recipe=<hash of everything that produces it>; an image whose
# label matches is not rebuilt. Intermediate artifacts live under $VIRTHOOKS_CACHE (/var/cache/virthooks):
#   base/<suite>-minbase-<hash>.tar        debootstrap --variant=minbase + python3 + procps
#   src/libvirt_9.0.0.orig.tar.xz           the libvirt source (from the Debian archive), sha256-checked
#   srcbuild/libvirt-9.0.0-<hash>.tar       the `meson install` tree of the source build (+ .deps: runtime packages)
#   ccache/                                 compiler cache of the source build (same build path each time)
#   images/<image>-<hash>.tar               the final rootfs, re-imported if podman's storage lost the image
#   logs/<job>.log                          full output of each step
# Nothing depends on the cache being there: an empty cache builds everything (in parallel).
# Everything that installs or compiles runs in a chroot inside a private mount namespace, never on this host.
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/env.sh"

RECIPE_VERSION=1
CACHE=$VIRTHOOKS_CACHE
MIRROR=${VIRTHOOKS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${VIRTHOOKS_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BASE_INCLUDE=python3,procps
LIBVIRT_PKGS="libvirt-daemon-system libvirt-daemon-system-sysv libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86"
LIBVIRT_SRC_VERSION=9.0.0
LIBVIRT_SRC_FILE=libvirt_${LIBVIRT_SRC_VERSION}.orig.tar.xz
LIBVIRT_SRC_URL=$MIRROR/pool/main/libv/libvirt/$LIBVIRT_SRC_FILE
LIBVIRT_SRC_SHA256=deca5cff1b7baac297bca9663907c61f71a47183371dc7ac019c107806d5435a
BUILD_PKGS="gcc libc6-dev make meson ninja-build pkg-config ccache perl xsltproc libxml2-utils libxml2-dev libglib2.0-dev libgnutls28-dev libtirpc-dev libyajl-dev"
# Only what libvirtd needs for the qemu and network drivers; everything else off (see libvirt-hooks.md).
MESON_OPTS="--prefix=/usr/local --buildtype=plain -Dqemu_user=root -Dqemu_group=root
 -Ddriver_qemu=enabled -Ddriver_network=enabled -Ddriver_remote=enabled -Ddriver_libvirtd=enabled
 -Ddocs=disabled -Dtests=disabled -Dnls=disabled -Dinit_script=none -Dexpensive_tests=disabled
 -Dbash_completion=disabled -Dhost_validate=disabled -Dlogin_shell=disabled -Dnss=disabled
 -Dsysctl_config=disabled -Dwireshark_dissector=disabled -Dfirewalld=disabled -Dfirewalld_zone=disabled
 -Dpolkit=disabled -Dudev=disabled -Dselinux=disabled -Dapparmor=disabled -Dapparmor_profiles=disabled
 -Dsecdriver_apparmor=disabled -Dsecdriver_selinux=disabled -Daudit=disabled -Dcapng=disabled
 -Dlibnl=disabled -Dlibpcap=disabled -Dlibssh=disabled -Dlibssh2=disabled -Dsasl=disabled -Dnumactl=disabled
 -Dnumad=disabled -Dpciaccess=disabled -Dreadline=disabled -Dblkid=disabled -Dfuse=disabled -Dcurl=disabled
 -Ddtrace=disabled -Dattr=disabled -Dsanlock=disabled -Dnetcf=disabled -Dglusterfs=disabled -Dlibiscsi=disabled
 -Dopenwsman=disabled -Dpm_utils=disabled
 -Ddriver_bhyve=disabled -Ddriver_ch=disabled -Ddriver_esx=disabled -Ddriver_hyperv=disabled
 -Ddriver_interface=disabled -Ddriver_libxl=disabled -Ddriver_lxc=disabled -Ddriver_openvz=disabled
 -Ddriver_secrets=disabled -Ddriver_test=disabled -Ddriver_vbox=disabled -Ddriver_vmware=disabled
 -Ddriver_vz=disabled
 -Dstorage_dir=disabled -Dstorage_disk=disabled -Dstorage_fs=disabled -Dstorage_gluster=disabled
 -Dstorage_iscsi=disabled -Dstorage_iscsi_direct=disabled -Dstorage_lvm=disabled -Dstorage_mpath=disabled
 -Dstorage_rbd=disabled -Dstorage_scsi=disabled -Dstorage_vstorage=disabled -Dstorage_zfs=disabled"
# iptables: the network driver (virtnetworkd or libvirtd) cannot start any network without it.
SRCBUILD_RUNTIME_PKGS="qemu-system-x86 iptables"
ALL_IMAGES="bookworm-libvirt trixie-libvirt srcbuild bookworm-bare"

log() { printf '[%s +%4ds] %s\n' "$(date +%T)" "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
sha() { sha256sum | cut -c1-16; }

# Run a command in chroot DIR, inside a private mount namespace (its mounts vanish with it).
# Extra bind mounts: BIND="hostdir:dir-in-chroot".
chroot_run() {
  local dir=$1; shift
  # shellcheck disable=SC2016  # expanded by the inner shell
  unshare --mount --propagation private -- /bin/sh -ec '
    d=$1; shift
    mount -t proc proc "$d/proc"
    if [ -n "${BIND:-}" ]; then mkdir -p "$d/${BIND#*:}"; mount --bind "${BIND%%:*}" "$d/${BIND#*:}"; fi
    exec chroot "$d" /usr/bin/env -i HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"' sh "$dir" "$@"
}

# Keep package scripts from starting daemons; give apt a resolver; point apt at updates + security.
prepare_rootfs() {
  local dir=$1
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"; chmod 0755 "$dir/usr/sbin/policy-rc.d"
  cp -L /etc/resolv.conf "$dir/etc/resolv.conf"
}

apt_install() {
  local dir=$1; shift
  chroot_run "$dir" /bin/sh -ec 'apt-get -qq update; apt-get install -y -q --no-install-recommends "$@"' sh "$@"
}

# Make the tree a plain "installed" system again and write it as a tarball for podman import.
finish_rootfs() {
  local dir=$1 out=$2
  rm -f "$dir/usr/sbin/policy-rc.d"
  chroot_run "$dir" apt-get clean
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/tmp/* "$dir"/var/tmp/* "$dir"/root/.cache
  : >"$dir/etc/resolv.conf"
  tar --numeric-owner -C "$dir" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf "$out.part" .
  mv "$out.part" "$out"
}

# Temporary work dirs under the cache (same filesystem as the tarballs); each build job runs in its own
# subshell whose EXIT trap removes them (chroot mounts live in private namespaces, so rm -rf is safe).
CLEANUP=()
workdir() { mkdir -p "$CACHE/work"; mktemp -d "$CACHE/work/$1.XXXXXX"; }

# --- base rootfs per suite ---------------------------------------------------------------------------
base_hash() { { echo "$RECIPE_VERSION $1 $MIRROR $SECURITY_MIRROR $BASE_INCLUDE"; declare -f make_base prepare_rootfs; } | sha; }
base_tar() { echo "$CACHE/base/$1-minbase-$(base_hash "$1").tar"; }

make_base() {
  local suite=$1 tar; tar=$(base_tar "$suite")
  mkdir -p "$CACHE/base" "$CACHE/logs"
  exec 8>"$CACHE/base/$suite.lock"; flock 8
  if [ -s "$tar" ]; then exec 8>&-; return 0; fi
  local t0=$SECONDS dir; dir=$(workdir "base-$suite"); CLEANUP+=("$dir")
  log "base $suite: debootstrap --variant=minbase (log: $CACHE/logs/base-$suite.log)"
  if ! debootstrap --variant=minbase --include="$BASE_INCLUDE" "$suite" "$dir" "$MIRROR" \
       >"$CACHE/logs/base-$suite.log" 2>&1; then
    tail -20 "$CACHE/logs/base-$suite.log" >&2; rm -rf "$dir"; die "debootstrap $suite failed"
  fi
  cat >"$dir/etc/apt/sources.list" <<EOF
deb $MIRROR $suite main
deb $MIRROR $suite-updates main
deb $SECURITY_MIRROR $suite-security main
EOF
  rm -rf "$dir"/var/cache/apt/archives/*.deb
  tar --numeric-owner -C "$dir" -cf "$tar.part" . && mv "$tar.part" "$tar"
  rm -rf "$dir"
  find "$CACHE/base" -name "$suite-minbase-*.tar" ! -path "$tar" -delete
  exec 8>&-
  log "base $suite: done in $((SECONDS - t0))s"
}

extract_base() {  # suite dir
  make_base "$1"
  tar --numeric-owner -C "$2" -xf "$(base_tar "$1")"
}

# --- libvirt built from source (bookworm builder chroot) --------------------------------------------
src_hash() {
  { echo "$RECIPE_VERSION $LIBVIRT_SRC_SHA256 $BUILD_PKGS $MESON_OPTS"; base_hash bookworm
    declare -f build_libvirt_src chroot_run apt_install; } | sha
}
src_tar() { echo "$CACHE/srcbuild/libvirt-$LIBVIRT_SRC_VERSION-$(src_hash).tar"; }

fetch_source() {
  local f=$CACHE/src/$LIBVIRT_SRC_FILE
  mkdir -p "$CACHE/src"
  exec 7>"$CACHE/src/.lock"; flock 7
  if ! echo "$LIBVIRT_SRC_SHA256  $f" | sha256sum -c --quiet >/dev/null 2>&1; then
    log "srcbuild: downloading $LIBVIRT_SRC_URL"
    wget -q --tries=3 -O "$f.part" "$LIBVIRT_SRC_URL"
    echo "$LIBVIRT_SRC_SHA256  $f.part" | sha256sum -c --quiet || die "checksum mismatch for $LIBVIRT_SRC_URL"
    mv "$f.part" "$f"
  fi
  exec 7>&-
}

build_libvirt_src() {
  local out; out=$(src_tar)
  mkdir -p "$CACHE/srcbuild" "$CACHE/ccache" "$CACHE/logs"
  exec 6>"$CACHE/srcbuild/.lock"; flock 6
  [ -s "$out" ] && [ -s "$out.deps" ] && { exec 6>&-; return 0; }
  local t0=$SECONDS dir log=$CACHE/logs/srcbuild-compile.log
  dir=$(workdir srcbuild-builder); CLEANUP+=("$dir")
  fetch_source & local fpid=$!
  extract_base bookworm "$dir"
  prepare_rootfs "$dir"
  log "srcbuild: installing build dependencies (log: $log)"
  # shellcheck disable=SC2086  # a word list
  apt_install "$dir" $BUILD_PKGS >"$log" 2>&1 || { tail -20 "$log" >&2; die "build deps failed"; }
  wait "$fpid"
  mkdir -p "$dir/build"
  tar -C "$dir/build" -xJf "$CACHE/src/$LIBVIRT_SRC_FILE"
  log "srcbuild: meson + ninja (libvirt $LIBVIRT_SRC_VERSION, prefix /usr/local, ccache $CACHE/ccache)"
  # Same path every time (/build/libvirt-X) so ccache hits across rebuilds.
  # shellcheck disable=SC2016,SC2086,SC2116  # inner script; MESON_OPTS is a word list
  if ! BIND="$CACHE/ccache:/ccache" chroot_run "$dir" /bin/sh -ec '
        export CCACHE_DIR=/ccache CCACHE_MAXSIZE=2G CCACHE_NOHASHDIR=1
        cd /build/libvirt-'"$LIBVIRT_SRC_VERSION"'
        meson setup build '"$(echo $MESON_OPTS)"'
        ninja -C build
        DESTDIR=/dest meson install -C build --no-rebuild
        ccache -s | head -5 || true
        # Runtime packages: whatever provides the libraries the installed ELF files link against.
        find /dest -type f \( -perm -0100 -o -name "*.so*" \) | while read -r f; do
          LD_LIBRARY_PATH=/dest/usr/local/lib/x86_64-linux-gnu ldd "$f" 2>/dev/null | awk "/=> \\//{print \$3}"
        done | sort -u | grep -v "^/dest/" | while read -r lib; do dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib"; done \
          | cut -d: -f1 | sort -u >/dest.deps
        ' >>"$log" 2>&1; then
    tail -30 "$log" >&2; die "libvirt source build failed"
  fi
  tar --numeric-owner -C "$dir/dest" -cf "$out.part" . && mv "$out.part" "$out"
  cp "$dir/dest.deps" "$out.deps"
  find "$CACHE/srcbuild" -name "libvirt-*.tar*" ! -path "$out" ! -path "$out.deps" -delete
  exec 6>&-
  log "srcbuild: libvirt built in $((SECONDS - t0))s; runtime packages: $(tr '\n' ' ' <"$out.deps")"
}

# --- images ------------------------------------------------------------------------------------------
image_suite() { case $1 in trixie-*) echo trixie ;; *) echo bookworm ;; esac; }
image_pkgs() {
  case $1 in
    *-libvirt) echo "$LIBVIRT_PKGS" ;;
    srcbuild) echo "$SRCBUILD_RUNTIME_PKGS" ;;
    *) echo "" ;;
  esac
}
image_hash() {
  local name=$1 suite; suite=$(image_suite "$name")
  { echo "$RECIPE_VERSION $name $(image_pkgs "$name")"; base_hash "$suite"
    [ "$name" = srcbuild ] && src_hash
    declare -f build_image finish_rootfs chroot_run apt_install; } | sha
}
image_label() { podman image inspect --format '{{index .Labels "virthooks.recipe"}}' "localhost/virthooks-$1" 2>/dev/null || true; }

build_image() {
  local name=$1 t0=$SECONDS h suite pkgs tar dir log
  h=$(image_hash "$name"); suite=$(image_suite "$name"); pkgs=$(image_pkgs "$name")
  tar=$CACHE/images/virthooks-$name-$h.tar; log=$CACHE/logs/image-$name.log
  if [ "$FORCE" = 0 ] && [ "$(image_label "$name")" = "$h" ]; then
    log "$name: up to date (recipe $h)"; return 0
  fi
  mkdir -p "$CACHE/images" "$CACHE/logs"
  if [ "$FORCE" = 1 ] || [ ! -s "$tar" ]; then
    [ "$name" = srcbuild ] && build_libvirt_src
    dir=$(workdir "$name"); CLEANUP+=("$dir")
    extract_base "$suite" "$dir"
    prepare_rootfs "$dir"
    if [ -n "$pkgs" ] || [ "$name" = srcbuild ]; then
      [ "$name" = srcbuild ] && pkgs="$pkgs $(tr '\n' ' ' <"$(src_tar).deps")"
      log "$name: apt-get install $pkgs (log: $log)"
      # shellcheck disable=SC2086  # a word list
      apt_install "$dir" $pkgs >"$log" 2>&1 || { tail -20 "$log" >&2; die "$name: apt-get install failed"; }
    fi
    if [ "$name" = srcbuild ]; then
      tar --numeric-owner -C "$dir" -xf "$(src_tar)"
      chroot_run "$dir" ldconfig
      # meson install autostarts a "default" network; nothing here serves it (no dnsmasq).
      rm -f "$dir/usr/local/etc/libvirt/qemu/networks/autostart/default.xml"
      chroot_run "$dir" /usr/local/sbin/libvirtd --version >>"$log" 2>&1
    fi
    # Debian's packages autostart the "default" network too; without dnsmasq-base it only fails noisily
    # and it would add network hook events to every daemon start: the fleet starts without it.
    rm -f "$dir/etc/libvirt/qemu/networks/autostart/default.xml"
    finish_rootfs "$dir" "$tar"
    rm -rf "$dir"
    find "$CACHE/images" -name "virthooks-$name-*.tar" ! -path "$tar" -delete
    log "$name: rootfs built in $((SECONDS - t0))s ($(du -m "$tar" | cut -f1) MB)"
  fi
  local t1=$SECONDS old; old=$(podman image inspect --format '{{.Id}}' "localhost/virthooks-$name" 2>/dev/null || true)
  podman import -q --change "LABEL virthooks.recipe=$h" --change "LABEL virthooks.image=$name" \
    --change 'CMD ["sleep", "infinity"]' "$tar" "localhost/virthooks-$name" >/dev/null
  log "$name: imported as localhost/virthooks-$name in $((SECONDS - t1))s (total $((SECONDS - t0))s)"
  # Drop the previous version (now untagged) unless a container still uses it.
  [ -z "$old" ] || podman rmi "$old" >/dev/null 2>&1 || true
}

# --- main ----------------------------------------------------------------------------------------------
FORCE=0
want=()
for a in "$@"; do
  case $a in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) a=${a#localhost/}; a=${a#virthooks-}
       case " $ALL_IMAGES " in *" $a "*) want+=("$a") ;; *) die "unknown image $a (known: $ALL_IMAGES)" ;; esac ;;
  esac
done
[ ${#want[@]} -gt 0 ] || read -ra want <<<"$ALL_IMAGES"
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot, rootful podman)"
for tool in podman debootstrap unshare flock wget; do command -v "$tool" >/dev/null || die "$tool is missing (tests/setup/debian-packages.txt)"; done

mkdir -p "$CACHE/images"
log "building ${want[*]} (cache $CACHE)"
pids=()
for name in "${want[@]}"; do
  # One builder per image at a time (two test sessions, say); base and source builds have their own locks.
  ( trap 'rm -rf "${CLEANUP[@]}"' EXIT; exec 9>"$CACHE/images/$name.lock"; flock 9; build_image "$name" ) &
  pids+=($!)
done
rc=0
for i in "${!pids[@]}"; do wait "${pids[$i]}" || { rc=1; log "FAILED: ${want[$i]}"; }; done
if [ "$rc" = 0 ]; then log "all images ready in ${SECONDS}s"; else log "some images failed after ${SECONDS}s"; fi
exit "$rc"
