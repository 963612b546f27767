"""Snapshots of QEMU domains: create, revert and delete, crash-safe.

Two kinds, as libvirt has them:

* internal: every writable disk is qcow2 and keeps the snapshot inside the image
  (``qemu-img snapshot`` when the domain is shut off; the QMP ``snapshot-save`` /
  ``snapshot-load`` / ``snapshot-delete`` jobs, with the memory state, when it runs);
* external, disk-only: every snapshotted disk gets a new qcow2 overlay whose backing
  file is the image the disk used so far, which is frozen from then on
  (``qemu-img create -b ... -F fmt`` offline; ``blockdev-add`` plus one
  ``transaction`` of ``blockdev-snapshot`` actions live). The domain XML declares the
  whole chain with ``<backingStore>``, so QEMU never probes a format.

The rules that keep the tree consistent:

* A frozen image (the top of an external snapshot, or a backing file of any chain a
  snapshot records) is never written. Reverting to an external snapshot gives the
  domain a new overlay on the frozen image; reverting to an internal snapshot whose
  image has been frozen since works on a copy of that image.
* Deleting an external snapshot merges its frozen image into the one image that
  builds on it when vsh created it and nothing else needs it (``block-stream`` live,
  ``qemu-img rebase`` offline), and rewrites every recorded chain; otherwise the
  images stay, because other chains still need them.
* Image files that vsh created (``owned``) are removed once no chain refers to them;
  internal snapshots that no metadata refers to are removed from them.
* Reverting discards the domain's current state; vsh refuses unless that state is
  kept by a snapshot (an unchanged image, an empty overlay) or ``force`` is given.

Crash safety: an operation writes its intent (``.intent.json``) first, then acts on
the images, then commits the metadata; the commit point of a creation is the new
``SNAP.xml``, of a deletion the removal of ``SNAP.xml`` (metadata never names data
that is gone). Every vsh command that touches a domain's snapshots first finishes or
undoes an interrupted operation (:meth:`Engine.recover`), under the domain lock.
``hook`` is called after every step (tests pass one that kills the process there).

By concern: :mod:`.chains` (disks and backing chains in the XML), :mod:`.images`
(qemu-img and image files), :mod:`.engine` (the Engine: locking, recovery, garbage
collection) with :mod:`.create`, :mod:`.revert` and :mod:`.delete`.
"""

from __future__ import annotations

from vsh.kvm.snapshot.chains import (  # noqa: F401
    chain, chains, disk_element, disk_elements, drop_from_chain, is_writable, push_overlay, set_top)
from vsh.kvm.snapshot.engine import DiskRequest, Engine, Runner  # noqa: F401

__all__ = ["Engine", "Runner", "DiskRequest"]
