#!/usr/bin/env bash
# Builds the virthooks execution environment on this machine (issue 24) and prints its reference on stdout.
#
#   build-ee.sh            the EE: ansible-builder v3 + podman from examples/execution-environment.yml
#                          -> localhost/virthooks-ee:<hash>
#   build-ee.sh ssh-host   a fleet host that also runs sshd (the fleet's Debian 12 libvirt image plus
#                          openssh-server), for jobs that reach their hosts over ssh as AWX does
#                          -> localhost/virthooks-ee-sshhost:<hash>
#
# Cached by content hash: the EE's tag is a hash of the EE definition, the lock subset that goes in it
# (ee-requirements.txt, cut from requirements/test.txt by lock_subset.py), pkgmgr, this script, the base
# image and the collection's own build (MANIFEST.json + FILES.json of `ansible-galaxy collection build`:
# every file that goes in, by sha256). An image with that tag is reused at once; one lost from podman's
# storage is loaded back from $VIRTHOOKS_CACHE/images/virthooks-ee-<hash>.tar; otherwise it is built
# (about 1 min here) and saved there. Concurrent callers wait for one build (flock).
#
# The base is made here, never pulled: the fleet's debootstrapped Debian 12 (build-images.sh bookworm-bare)
# plus python3-pip, python3-venv, ca-certificates and this machine's extra CA certificates
# (/usr/local/share/ca-certificates: package traffic here goes through a re-signing TLS proxy). That layer
# is this machine's, not the example's: a user builds the same definition FROM docker.io/library/debian:bookworm.
# Run as root (rootful podman, like the fleet).
set -euo pipefail
EE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$EE_DIR/../fleet/env.sh"
REPO=$FLEET_REPO
PY=${PYTHON:-$REPO/.venv/bin/python}
BIN=$(dirname "$PY")
CACHE=$VIRTHOOKS_CACHE

log() { printf '[%s +%4ds] build-ee: %s\n' "$(date +%T)" "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
sha() { sha256sum | cut -c1-16; }
has_image() { podman image exists "$1"; }

[ "$(id -u)" = 0 ] || die "run as root (rootful podman, like the fleet)"
for tool in podman flock "$BIN/ansible-builder" "$BIN/ansible-galaxy"; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
mkdir -p "$CACHE/images" "$CACHE/logs" "$CACHE/work"

# --- the base: the fleet's Debian 12 + pip + this machine's CAs ----------------------------------------
BASE_CONTAINERFILE='FROM localhost/virthooks-bookworm-bare:latest
COPY ca/ /usr/local/share/ca-certificates/
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      python3-pip python3-venv ca-certificates && update-ca-certificates && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt'

base_image() {
  "$REPO/extensions/molecule/utils/fleet/build-images.sh" bookworm-bare >&2
  local recipe h ctx
  recipe=$(podman image inspect --format '{{index .Labels "virthooks.recipe"}}' localhost/virthooks-bookworm-bare)
  h=$({ echo "$recipe"; echo "$BASE_CONTAINERFILE"; cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } | sha)
  BASE=localhost/virthooks-ee-base:$h
  has_image "$BASE" && return 0
  ctx=$(mktemp -d "$CACHE/work/ee-base.XXXXXX")
  mkdir "$ctx/ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
  printf '%s\n' "$BASE_CONTAINERFILE" >"$ctx/Containerfile"
  log "base: podman build $BASE (log: $CACHE/logs/ee-base.log)"
  podman build -q -t "$BASE" "$ctx" >"$CACHE/logs/ee-base.log" 2>&1 || { tail -20 "$CACHE/logs/ee-base.log" >&2; rm -rf "$ctx"; die "base image failed"; }
  rm -rf "$ctx"
}

# --- the EE ---------------------------------------------------------------------------------------------
build_ee() {
  exec 9>"$CACHE/images/virthooks-ee.lock"; flock 9
  base_image
  local h image tar t0=$SECONDS ctx
  ctx=$(mktemp -d "$CACHE/work/ee.XXXXXX")
  EE_CTX=$ctx
  trap 'rm -rf "$EE_CTX"' EXIT
  "$BIN/ansible-galaxy" collection build "$REPO" --output-path "$ctx" >"$CACHE/logs/ee-collection.log" 2>&1 \
    || { cat "$CACHE/logs/ee-collection.log" >&2; die "ansible-galaxy collection build failed"; }
  cp "$REPO/examples/execution-environment.yml" "$EE_DIR/pkgmgr" "$ctx/"
  # ansible-core and ansible-runner, and what ansible-builder's builder stage installs unpinned (`pip install
  # bindep pyyaml packaging`, already satisfied then): the lock's versions with their hashes.
  "$PY" "$EE_DIR/lock_subset.py" "$REPO/requirements/test.txt" ansible-core ansible-runner bindep pyyaml packaging \
    >"$ctx/ee-requirements.txt"
  h=$({ podman image inspect --format '{{.Id}}' "$BASE"
        cat "$ctx/execution-environment.yml" "$ctx/ee-requirements.txt" "$ctx/pkgmgr" "$0"
        tar -xzOf "$ctx"/virthooks-libvirt-*.tar.gz MANIFEST.json FILES.json; } | sha)
  image=localhost/virthooks-ee:$h
  tar=$CACHE/images/virthooks-ee-$h.tar
  if has_image "$image"; then
    log "$image: up to date"
  elif [ -s "$tar" ]; then
    podman load -q -i "$tar" >/dev/null
    log "$image: loaded from $tar in $((SECONDS - t0))s"
  else
    log "$image: ansible-builder build (base $BASE; log: $CACHE/logs/ee-build.log)"
    if ! (cd "$ctx" && "$BIN/ansible-builder" build -f execution-environment.yml -c context -t "$image" \
            --container-runtime podman --build-arg "EE_BASE_IMAGE=$BASE" -v 2) >"$CACHE/logs/ee-build.log" 2>&1; then
      tail -30 "$CACHE/logs/ee-build.log" >&2; die "ansible-builder build failed"
    fi
    podman save -q -o "$tar.part" "$image" && mv "$tar.part" "$tar"
    find "$CACHE/images" -name 'virthooks-ee-*.tar' ! -path "$tar" -delete
    log "$image: built in $((SECONDS - t0))s, saved to $tar"
  fi
  # Older EEs go (one still used by a container stays).
  podman images --format '{{.Repository}}:{{.Tag}}' localhost/virthooks-ee | grep -vx "$image" \
    | xargs -r podman rmi >/dev/null 2>&1 || true
  echo "$image"
}

# --- a fleet host with sshd ----------------------------------------------------------------------------
SSH_CONTAINERFILE='FROM localhost/virthooks-bookworm-libvirt:latest
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      openssh-server && apt-get clean && rm -rf /var/lib/apt/lists/* && mkdir -p /run/sshd && rm -f /etc/ssh/ssh_host_*'

ssh_host() {
  exec 9>"$CACHE/images/virthooks-ee-sshhost.lock"; flock 9
  "$REPO/extensions/molecule/utils/fleet/build-images.sh" bookworm-libvirt >&2
  local recipe h image ctx
  recipe=$(podman image inspect --format '{{index .Labels "virthooks.recipe"}}' localhost/virthooks-bookworm-libvirt)
  h=$({ echo "$recipe"; echo "$SSH_CONTAINERFILE"; } | sha)
  image=localhost/virthooks-ee-sshhost:$h
  if ! has_image "$image"; then
    ctx=$(mktemp -d "$CACHE/work/ee-sshhost.XXXXXX")
    printf '%s\n' "$SSH_CONTAINERFILE" >"$ctx/Containerfile"
    log "ssh-host: podman build $image"
    podman build -q -t "$image" "$ctx" >"$CACHE/logs/ee-sshhost.log" 2>&1 || { tail -20 "$CACHE/logs/ee-sshhost.log" >&2; rm -rf "$ctx"; die "ssh host image failed"; }
    rm -rf "$ctx"
  fi
  echo "$image"
}

case ${1:-ee} in
  ee) build_ee ;;
  ssh-host) ssh_host ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
