#!/usr/bin/env bash
# Makes the containers.podman collection available offline (Galaxy is not reachable from the test machines):
# it is bundled in the `ansible` package on PyPI. Downloads that wheel once (pinned, sha256-checked, cached
# under $VIRTHOOKS_CACHE/wheels) and extracts only ansible_collections/containers/podman into
#   $FLEET_COLLECTIONS/ansible_collections/containers/podman    (default /work/main/.cache/collections/...)
# Idempotent: does nothing when the pinned version is already there. Add $FLEET_COLLECTIONS to
# ANSIBLE_COLLECTIONS_PATH (tests/integration/test_fleet_infra.py and the README show how).
set -euo pipefail
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/env.sh"

ANSIBLE_VERSION=12.3.0           # pins ansible-core 2.19; bundles containers.podman 1.18.0
PODMAN_COLLECTION_VERSION=1.18.0
WHEEL=ansible-$ANSIBLE_VERSION-py3-none-any.whl
WHEEL_SHA256=cd156f82fa87f7a899212b0efa9f7ca3a24d609212de9f78428a572eb01e5414
DEST=$FLEET_COLLECTIONS/ansible_collections/containers/podman
PY=${PYTHON:-python3}

have=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["collection_info"]["version"])' \
        "$DEST/MANIFEST.json" 2>/dev/null || true)
if [ "$have" = "$PODMAN_COLLECTION_VERSION" ]; then
  echo "containers.podman $have already in $FLEET_COLLECTIONS"; exit 0
fi

mkdir -p "$VIRTHOOKS_CACHE/wheels"
w=$VIRTHOOKS_CACHE/wheels/$WHEEL
if ! echo "$WHEEL_SHA256  $w" | sha256sum -c --quiet >/dev/null 2>&1; then
  echo "downloading $WHEEL from PyPI"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
     "ansible==$ANSIBLE_VERSION" -d "$tmp"
  echo "$WHEEL_SHA256  $tmp/$WHEEL" | sha256sum -c --quiet || { echo "checksum mismatch for $WHEEL" >&2; exit 1; }
  mv "$tmp/$WHEEL" "$w"
fi

"$PY" - "$w" "$FLEET_COLLECTIONS" <<'EOF'
import os, shutil, sys, tempfile, zipfile
wheel, root = sys.argv[1], sys.argv[2]
prefix = "ansible_collections/containers/podman/"
dest = os.path.join(root, prefix)
os.makedirs(os.path.dirname(dest.rstrip("/")), exist_ok=True)
tmp = tempfile.mkdtemp(dir=os.path.dirname(dest.rstrip("/")), prefix=".podman.")
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            z.extract(name, tmp)
shutil.rmtree(dest, ignore_errors=True)
os.replace(os.path.join(tmp, prefix), dest.rstrip("/"))
shutil.rmtree(tmp)
EOF
echo "containers.podman $PODMAN_COLLECTION_VERSION extracted from $WHEEL into $FLEET_COLLECTIONS"
