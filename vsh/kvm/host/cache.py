"""``probe()``: the host facts, with the QEMU and KVM answers from a cache while they still hold.

The cache is one JSON file (``host-probe.json``, mode 0600, written atomically) keyed
by the kernel release, the loaded KVM modules, the ``/dev/kvm`` node and whether this
user may open it, and the QEMU binary's path, mtime and size; the QEMU version is
stored with the entry.  A verdict that could not be reached (the machine was too slow
to run even the TCG control guest) is never cached.  A cache hit imports nothing more.
"""

from __future__ import annotations

import json
import os
import time

from vsh.kvm.host.hardware import fill_hardware, kvm_modules
from vsh.kvm.host.qemu import (find_qemu, parse_accel_help, parse_qemu_info, parse_qmp_replies, qmp_info_argv,
                               qmp_script)
from vsh.kvm.host.records import CpuModel, HostInfo, KvmInfo, MachineType


CACHE_FILE = "host-probe.json"


#: Bump when the shape or the meaning of cached data changes.
CACHE_SCHEMA = 3


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/vsh``, or ``~/.cache/vsh``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "vsh")


def cache_key(qemu: str | None, dev: str = "/dev/kvm") -> dict:
    """What must not have changed for a cached probe to stay true."""
    key: dict = {"schema": CACHE_SCHEMA, "kernel": os.uname().release,
                 "kvm_modules": kvm_modules(), "euid": os.geteuid()}
    try:
        st = os.stat(dev)
        key["kvm_dev"] = [st.st_rdev, st.st_mode, st.st_uid, st.st_gid,
                          os.access(dev, os.R_OK | os.W_OK)]
    except OSError:
        key["kvm_dev"] = None
    if qemu:
        try:
            st = os.stat(qemu)
            key["qemu"] = [qemu, st.st_mtime_ns, st.st_size]
        except OSError:
            key["qemu"] = [qemu, None, None]
    else:
        key["qemu"] = None
    return key


def load_cache(path: str, key: dict) -> dict | None:
    """The cached data if the file holds an entry for ``key``, else None."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key or not isinstance(doc.get("data"), dict):
        return None
    return doc["data"]


def write_cache(path: str, key: dict, data: dict) -> None:
    """Write the cache file atomically, mode 0600 (an unwritable cache only costs speed)."""
    import tempfile

    d = os.path.dirname(path)
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".host-probe-", dir=d)
    except OSError:
        return  # an unwritable cache only costs speed
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"key": key, "data": data}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def probe_qemu_and_kvm(qemu: str | None) -> dict:
    """The answers the cache keeps: QEMU's (QMP, ``-accel help``) and the KVM and TCG verdicts."""
    from vsh.kvm.host import kvmprobe  # a cache miss only: it brings subprocess and friends

    data: dict = {"qemu": {}, "accelerators": [], "kvm": {}, "tcg_usable": False}
    runs: list = []
    stdin_data: dict[str, bytes] = {}
    if qemu:
        runs = [kvmprobe.Run("qmp", qmp_info_argv(qemu)), kvmprobe.Run("accel", [qemu, "-accel", "help"])]
        stdin_data = {"qmp": qmp_script()}
    kvm, tcg_ok = kvmprobe.probe_kvm(qemu, extra_runs=runs, stdin_data=stdin_data)
    if qemu:
        qmp_run, accel_run = runs
        data["qemu"] = parse_qemu_info(parse_qmp_replies(qmp_run.out.decode("utf-8", "replace")))
        if not data["qemu"]["version"]:
            data["qemu"]["error"] = kvmprobe.qemu_error_line(qmp_run.err) or "no QMP answer"
        data["accelerators"] = parse_accel_help(accel_run.out.decode("utf-8", "replace"))
        if tcg_ok is None and "tcg" in data["accelerators"]:
            # no KVM test ran, so no TCG control either: run the test guest under TCG alone
            tcg_ok = kvmprobe.tcg_runs_payload(qemu)
    data["tcg_usable"] = bool(tcg_ok)
    data["kvm"] = kvm.asdict()
    return data


def probe(cache_dir: str | None = None, refresh: bool = False, *, qemu: str | None = None) -> HostInfo:
    """Probe the host, using the cached QEMU/KVM answers when they still hold."""
    t0 = time.monotonic()
    qemu = qemu or find_qemu()
    path = os.path.join(cache_dir or default_cache_dir(), CACHE_FILE)
    key = cache_key(qemu)
    data = None if refresh else load_cache(path, key)
    from_cache = data is not None
    if data is None:
        data = probe_qemu_and_kvm(qemu)
        if data["kvm"].get("decided", True):
            write_cache(path, key, data)
    host = host_from_data(qemu, data)
    fill_hardware(host)
    host.from_cache = from_cache
    host.probe_seconds = round(time.monotonic() - t0, 3)
    return host


def host_from_data(qemu: str | None, data: dict) -> HostInfo:
    """A HostInfo from the cached (or just probed) QEMU and KVM answers."""
    q = data.get("qemu") or {}
    kvm_fields = set(KvmInfo.field_names())
    kvm = KvmInfo(**{k: v for k, v in (data.get("kvm") or {}).items() if k in kvm_fields})
    return HostInfo(
        qemu_path=qemu,
        qemu_version=q.get("version", ""),
        qemu_version_tuple=tuple(q.get("version_tuple", ())),
        qemu_package=q.get("package", ""),
        machines=[MachineType(**m) for m in q.get("machines", [])],
        accelerators=list(data.get("accelerators", [])),
        cpu_models=[CpuModel(**c) for c in q.get("cpu_models", [])],
        tcg_usable=bool(data.get("tcg_usable")),
        kvm=kvm,
    )
