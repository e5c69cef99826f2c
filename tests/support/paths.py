"""Where the repository, the collection link and the offline third-party collections are."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "tests" / "output" / "collections"
LINK = COLLECTIONS / "ansible_collections" / "virthooks" / "libvirt"
# .cache/collections holds third-party collections installed offline by the test setup.
EXTRA_COLLECTIONS = REPO / ".cache" / "collections"
