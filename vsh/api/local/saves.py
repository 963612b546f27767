"""Saved state in the local driver: save a running domain to an image, restore it,
managed save images in the store.

Saving migrates the paused guest into a file that starts with a small header holding
the domain XML (:mod:`vsh.kvm.saveimage`); restoring starts QEMU with ``-incoming
defer`` (through :func:`vsh.api.local.launch.launch`) and migrates it back.
"""

from __future__ import annotations

import os

from vsh.core.errors import InvalidArgument, OperationInvalid, VshError


def save(store, ref, final: str, running: bool = False, paused: bool = False, bypass_cache: bool = False,
         xml: str | None = None, progress=None) -> dict:
    """Save the running domain ``ref`` into ``final``; ``xml`` replaces the recorded definition."""
    from vsh.kvm import client

    if xml is not None:
        xml = _same_machine(store, ref, xml)
    rundir = store.runtime_dir(ref.name)
    st = client.read_state(rundir) or {}
    if not ref.active or st.get("state") not in ("running", "paused"):
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    directory = os.path.dirname(os.path.abspath(final))
    if not os.path.isdir(directory):
        raise InvalidArgument(f"Failed to create file '{final}': No such file or directory")
    if os.path.isdir(final):
        raise InvalidArgument(f"Failed to create file '{final}': Is a directory")
    with store.lock(ref.name, timeout=600.0):     # not while a snapshot operation runs
        return _save_locked(store, ref, final, st, running, paused, bypass_cache, xml, progress)


def _same_machine(store, ref, xml: str) -> str:
    """The definition to record instead of the live one; it must describe the same machine
    (same name and UUID; restore fails if the devices differ)."""
    from vsh.core.domain import Domain

    new = Domain.parse(xml)
    old = store.load(ref)
    if new.name != old.name or (new.uuid or "").lower() != (old.uuid or "").lower():
        raise InvalidArgument("the XML given with --xml must describe the same domain (name and UUID)")
    return new.to_xml(inactive=True)


def _save_locked(store, ref, final, st, running, paused, bypass_cache, xml, progress) -> dict:
    from vsh.kvm import client, saveimage

    rundir = store.runtime_dir(ref.name)
    dom = store.load(ref)
    resume = running or (st.get("state") == "running" and not paused)
    tmp = saveimage.tmp_path_for(final)
    try:
        offset = saveimage.create(tmp, xml if xml is not None else dom.to_xml(inactive=True), resume)
    except OSError as exc:
        raise InvalidArgument(f"Failed to create file '{final}': {exc.strerror}") from None
    stop = progress_thread(rundir, progress) if progress else None
    try:
        return client.save(rundir, tmp, os.path.abspath(final), offset, bypass_cache=bypass_cache)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        if stop:
            stop()


def progress_thread(rundir, progress):
    """Call ``progress(percent)`` while a save runs (from QEMU's migration counters); returns
    the function that stops it."""
    import threading

    from vsh.kvm import client

    done = threading.Event()

    def run():
        last = -1
        while not done.wait(0.1):
            try:
                info = client.qmp(rundir, "query-migrate", timeout=2.0)
            except VshError:
                continue
            ram = info.get("ram") or {}
            total = ram.get("total") or 0
            if not total:
                continue
            pct = max(0, min(99, int(100 * (total - ram.get("remaining", total)) / total)))
            if pct != last:
                progress(pct)
                last = pct

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def stop():
        done.set()
        thread.join(timeout=3.0)

    return stop


def restore(store, path: str, *, xml: str | None = None, running: bool = False, paused: bool = False,
            bypass_cache: bool = False, expect_name: str | None = None) -> dict:
    """Start the domain the save image ``path`` describes and load its state."""
    from vsh.api.local.launch import launch
    from vsh.core.domain import Domain
    from vsh.kvm import saveimage

    img = saveimage.read(path)
    dom = Domain.parse(xml if xml is not None else img.xml, os.path.basename(path))
    dom.node.attrib.pop("id", None)
    if expect_name is not None and dom.name != expect_name:
        raise OperationInvalid(f"operation failed: the save image holds domain '{dom.name}', "
                               f"not '{expect_name}'")
    owner = store._uuid_owner(dom.uuid)
    if owner is not None and owner != dom.name:
        raise OperationInvalid(f"operation failed: domain '{owner}' already exists with uuid {dom.uuid}")
    persistent = check_not_running(store, dom)
    start_paused = paused or (not running and not img.running)
    first_run = {"incoming": {"path": os.path.abspath(path), "offset": img.data_offset,
                              "drop_cache": bool(bypass_cache)},
                 "running_reason": "restored", "paused_reason": "user",
                 "drop_argv": ["-incoming", "defer"]}
    return launch(store, dom, paused=start_paused, extra_argv=["-incoming", "defer"],
                  first_run=first_run, transient=not persistent)


def check_not_running(store, dom) -> bool:
    """Refuse to run ``dom`` over an active domain of its name or a definition with another UUID;
    whether it is the defined (persistent) one."""
    existing = store.find(dom.name)
    if existing is None:
        return False
    if existing.active:
        raise OperationInvalid(f"Requested operation is not valid: domain '{dom.name}' is already active")
    if not existing.persistent:
        return False
    old = store.load(existing, inactive=True)
    if (old.uuid or "").lower() != (dom.uuid or "").lower():
        raise OperationInvalid(f"operation failed: domain '{dom.name}' already exists with uuid {old.uuid}")
    return True


def start_from_managed_save(store, ref, paused: bool = False, bypass_cache: bool = False) -> dict:
    """``start`` of a domain with a managed save image: resume it, then drop the image."""
    from vsh.api.local.domains import managed_save_path

    path = str(managed_save_path(store, ref.name))
    st = restore(store, path, paused=paused, bypass_cache=bypass_cache, expect_name=ref.name)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return st
