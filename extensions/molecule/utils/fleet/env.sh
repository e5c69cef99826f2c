# shellcheck shell=bash
# Sourced by every fleet script (and usable by hand: `. extensions/molecule/utils/fleet/env.sh`).
# Makes every podman call use the fleet's containers.conf (ulimits + runc, see containers.conf).
FLEET_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export FLEET_DIR
export CONTAINERS_CONF="$FLEET_DIR/containers.conf"
# Debootstrap tarballs, the libvirt source, ccache, built rootfs tarballs: outside the repository.
export VIRTHOOKS_CACHE="${VIRTHOOKS_CACHE:-/var/cache/virthooks}"
# Where the offline containers.podman collection goes (see get-podman-collection.sh).
FLEET_REPO=$(cd "$FLEET_DIR/../../../.." && pwd)
export FLEET_REPO
export FLEET_COLLECTIONS="${FLEET_COLLECTIONS:-$FLEET_REPO/.cache/collections}"
