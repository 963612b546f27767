"""What this host can run: QEMU discovery and an honest KVM verdict.

``probe()`` answers three questions and caches the slow answers:

* Which QEMU?  ``qemu-system-x86_64`` from ``$PATH``, ``/usr/bin`` or
  ``/usr/libexec``; its version, machine types and CPU models come from one
  short QEMU run that answers QMP on stdin/stdout (``query-version``,
  ``query-machines``, ``query-cpu-definitions``), its accelerators from
  ``-accel help``.
* Can KVM run an ordinary guest?  See ``_probe_kvm`` for the steps and why
  each one proves what it proves.  ``/dev/kvm`` existing proves nothing: on a
  paravirtual nested host (``kvm_pvm``) the device opens and ``KVM_CREATE_VM``
  works, yet an ordinary guest never gets past its first exception.
* What is the host made of?  CPUs, topology, memory, NUMA cells and IOMMU
  groups are read from ``/proc`` and ``/sys`` on every call (cheap, and they
  can change); only the QEMU and KVM answers are cached.

The cache is one JSON file (``host-probe.json``, mode 0600, written
atomically) keyed by the kernel release, the loaded KVM modules, the
``/dev/kvm`` node and whether this user may open it, and the QEMU binary's
path, mtime and size; the QEMU version is stored with the entry.  A verdict
that could not be reached (the machine was too slow to run even the TCG
control guest) is never cached.

Loading this module is cheap (json, os, re, time): subprocess, selectors,
tempfile and cffi are imported only when a probe has to run, and the records
below are plain classes rather than dataclasses (the dataclasses module and
class generation cost more than everything else here).
"""

from __future__ import annotations

import json
import os
import re
import time

from vsh.core.errors import InvalidArgument, Unsupported

__all__ = [
    "HostInfo",
    "KvmInfo",
    "MachineType",
    "CpuModel",
    "probe",
    "default_domain_type",
    "find_qemu",
    "host_validate",
    "capabilities_xml",
    "domcapabilities_xml",
    "nodeinfo",
]

QEMU_NAME = "qemu-system-x86_64"
QEMU_DIRS = ("/usr/bin", "/usr/libexec", "/usr/local/bin")
CACHE_FILE = "host-probe.json"
#: Bump when the shape or the meaning of cached data changes.
CACHE_SCHEMA = 3

#: How long the KVM test guest may take before KVM is declared stuck.
KVM_TEST_TIMEOUT = 1.5
#: The KVM test guest's exit status when it reached its last step.
_PAYLOAD_OK_STATUS = (0x2A << 1) | 1

# ioctl numbers (linux/kvm.h): _IO(KVMIO=0xAE, nr)
_KVM_GET_API_VERSION = 0xAE00
_KVM_CREATE_VM = 0xAE01
_KVM_CHECK_EXTENSION = 0xAE03
_KVM_GET_VCPU_MMAP_SIZE = 0xAE04
_KVM_CAPS = {
    "irqchip": 0,
    "hlt": 1,
    "user_memory": 3,
    "set_tss_addr": 4,
    "ext_cpuid": 7,
    "nr_vcpus": 9,
    "nr_memslots": 10,
    "max_vcpus": 66,
    "nested_state": 157,
}
#: Capabilities an x86 KVM must have for QEMU to run any guest at all.
_KVM_REQUIRED_CAPS = ("user_memory", "set_tss_addr", "ext_cpuid")

# The test guest, assembled from tests/data/kvm-probe-payload.S (see there for
# the source and the meaning of each progress byte).  It is zero-padded to
# 64 KiB, with a far jump to F000:0000 at the reset vector (offset 0xfff0).
_PAYLOAD_HEX = (
    "fab031e6e931c08ec08ed0bc00708cc88ed8be2300bf0070b94d01fcf3a4ea0070000031"
    "c08ed8b032e6e9660f011647710f20c06683c8010f22c066ea20700000180066b810008e"
    "d88ec08ed0b033e6e9bf0010000031c0b9000c0000f3abc7050010000003200000c70500"
    "20000003300000c70500300000830000000f20e083c8200f22e0b8001000000f22d8b980"
    "0000c00f320d000100000f30b034e6e90f20c00d000000800f22c0b035e6e9ea93700000"
    "0800b036e6e948c7c400900000488d04251371000048c7c7004000006689473066c74732"
    "080066c74734008e48c1e8106689473648c1e810894738c7473c000000000f011c253d71"
    "0000ccb038e6e948c7c70000100048b89078563412000000488907483b077517b039e6e9"
    "48c7c02a00000048c1e02048c1e820e6e9e6f4f4ebfdb037e6e948cf8db4000000000000"
    "0000000000000000009a2000ffff00000092cf00ffff0000009acf00ff00004000000000"
    "00001f001d71"
)
_RESET_VECTOR_HEX = "ea0000" + "00f0"

_STAGES = {
    "": "before its first instruction",
    "1": "in real mode at the reset vector",
    "2": "in real mode, running from RAM",
    "3": "after entering 32-bit protected mode",
    "4": "after setting up page tables and EFER.LME",
    "5": "after turning paging on",
    "6": "in 64-bit mode, at its first exception delivered through the IDT",
    "7": "inside its exception handler",
    "8": "after returning from its exception handler",
    "9": "after its memory check",
}


def payload_image() -> bytes:
    """The 64 KiB firmware image of the KVM test guest."""
    code = bytes.fromhex(_PAYLOAD_HEX)
    image = bytearray(0x10000)
    image[: len(code)] = code
    vec = bytes.fromhex(_RESET_VECTOR_HEX)
    image[0xFFF0 : 0xFFF0 + len(vec)] = vec
    return bytes(image)


# --------------------------------------------------------------------------
# data


class _Factory:
    """A default made fresh for each record (like dataclasses.field(default_factory=...))."""

    def __init__(self, make):
        self.make = make


class _Record:
    """A small dataclass look-alike: fields are the annotated class attributes, in order.

    Records take their fields positionally or by keyword, compare equal field by
    field, and turn into plain dicts with ``asdict()``.
    """

    _field_names: tuple[str, ...] = ()

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        names = list(cls._field_names)
        for n in cls.__dict__.get("__annotations__", {}):
            if n not in names and not n.startswith("_"):
                names.append(n)
        cls._field_names = tuple(names)

    def __init__(self, *args, **kw):
        names = self._field_names
        if len(args) > len(names):
            raise TypeError("%s takes at most %d arguments" % (type(self).__name__, len(names)))
        for n, v in zip(names, args):
            if n in kw:
                raise TypeError("%s got two values for '%s'" % (type(self).__name__, n))
            kw[n] = v
        unknown = set(kw) - set(names)
        if unknown:
            raise TypeError("%s has no field %s" % (type(self).__name__, ", ".join(sorted(unknown))))
        for n in names:
            if n in kw:
                v = kw[n]
            else:
                v = getattr(type(self), n, _MISSING)
                if v is _MISSING:
                    raise TypeError("%s needs '%s'" % (type(self).__name__, n))
                if isinstance(v, _Factory):
                    v = v.make()
            setattr(self, n, v)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return cls._field_names

    def asdict(self) -> dict:
        def conv(v):
            if isinstance(v, _Record):
                return v.asdict()
            if isinstance(v, (list, tuple)):
                return type(v)(conv(x) for x in v)
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            return v

        return {n: conv(getattr(self, n)) for n in self._field_names}

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._field_names)

    __hash__ = None

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % (n, getattr(self, n)) for n in self._field_names))


_MISSING = object()


class MachineType(_Record):
    """One ``-machine`` type, as QEMU's ``query-machines`` reports it."""

    name: str
    alias: str | None = None
    is_default: bool = False
    cpu_max: int = 1
    deprecated: bool = False


class CpuModel(_Record):
    """One ``-cpu`` model; ``usable`` under TCG (what query-cpu-definitions says there)."""

    name: str
    usable: bool = True
    deprecated: bool = False


class KvmInfo(_Record):
    """The KVM verdict.

    ``present``: ``/dev/kvm`` exists.  ``accessible``: this user can open it
    read-write.  ``usable``: a 64-bit test guest ran to its end under
    ``-accel kvm`` (``reason`` says why not, or what was proven).
    ``host_cpu_usable``: the same with ``-cpu host`` (what host-passthrough
    and host-model need).
    """

    present: bool = False
    accessible: bool = False
    usable: bool = False
    reason: str = ""
    api_version: int | None = None
    extensions: dict[str, int] = _Factory(dict)
    vm_create: bool = False
    modules: list[str] = _Factory(list)
    host_cpu_usable: bool = False
    host_cpu_reason: str = ""
    decided: bool = True
    seconds: float = 0.0


class HostInfo(_Record):
    """Everything vsh needs to know about the host (see module docstring)."""

    qemu_path: str | None = None
    qemu_version: str = ""
    qemu_version_tuple: tuple[int, ...] = ()
    qemu_package: str = ""
    machines: list[MachineType] = _Factory(list)
    accelerators: list[str] = _Factory(list)
    cpu_models: list[CpuModel] = _Factory(list)
    tcg_usable: bool = False
    kvm: KvmInfo = _Factory(KvmInfo)
    arch: str = "x86_64"
    kernel_release: str = ""
    cpu_model_name: str = ""
    cpu_vendor: str = ""
    cpu_flags: list[str] = _Factory(list)
    cpus: int = 1
    sockets: int = 1
    cores_per_socket: int = 1
    threads_per_core: int = 1
    mhz: int = 0
    numa_cells: list[dict] = _Factory(list)
    memory_kib: int = 0
    iommu_groups: bool = False
    from_cache: bool = False
    probe_seconds: float = 0.0

    @property
    def tcg(self) -> bool:
        return "tcg" in self.accelerators and self.tcg_usable

    def machine(self, name: str) -> MachineType | None:
        """The machine type called ``name`` (or aliased so)."""
        for m in self.machines:
            if m.name == name or m.alias == name:
                return m
        return None

    def default_machine(self) -> MachineType | None:
        for m in self.machines:
            if m.is_default:
                return m
        return self.machines[0] if self.machines else None


def default_domain_type(host: HostInfo) -> str:
    """'kvm' where KVM really runs guests, else 'qemu' (TCG)."""
    return "kvm" if host.kvm.usable else "qemu"


# --------------------------------------------------------------------------
# QEMU discovery


def find_qemu(path_env: str | None = None) -> str | None:
    """Path of ``qemu-system-x86_64``: ``$PATH`` first, then the usual directories."""
    path = path_env if path_env is not None else os.environ.get("PATH", "")
    for d in path.split(os.pathsep):
        p = os.path.join(d or ".", QEMU_NAME)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return os.path.realpath(p)
    for d in QEMU_DIRS:
        p = os.path.join(d, QEMU_NAME)
        if os.access(p, os.X_OK):
            return os.path.realpath(p)
    return None


_QMP_COMMANDS = ("query-version", "query-machines", "query-cpu-definitions")


def _qmp_script() -> bytes:
    lines = [{"execute": "qmp_capabilities", "id": "caps"}]
    lines += [{"execute": c, "id": c} for c in _QMP_COMMANDS]
    lines.append({"execute": "quit", "id": "quit"})
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def _qmp_info_argv(qemu: str) -> list[str]:
    return [qemu, "-machine", "none", "-accel", "tcg", "-nodefaults", "-no-user-config",
            "-display", "none", "-S", "-qmp", "stdio"]


def parse_qmp_replies(text: str) -> dict[str, object]:
    """Map the ``id`` of each QMP command to its ``return`` value (errors are skipped)."""
    out: dict[str, object] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and "id" in msg and "return" in msg:
            out[str(msg["id"])] = msg["return"]
    return out


def parse_qemu_info(replies: dict[str, object]) -> dict:
    """Version, machines and CPU models from ``parse_qmp_replies`` output."""
    info: dict = {"version": "", "version_tuple": [], "package": "", "machines": [], "cpu_models": []}
    ver = replies.get("query-version")
    if isinstance(ver, dict):
        q = ver.get("qemu", {})
        tup = [int(q.get("major", 0)), int(q.get("minor", 0)), int(q.get("micro", 0))]
        info["version_tuple"] = tup
        info["version"] = "%d.%d.%d" % tuple(tup)
        info["package"] = str(ver.get("package", "")).strip()
    machines = replies.get("query-machines")
    if isinstance(machines, list):
        ms = []
        for m in machines:
            if not isinstance(m, dict) or "name" not in m or m["name"] == "none":
                continue
            ms.append({
                "name": m["name"],
                "alias": m.get("alias"),
                "is_default": bool(m.get("is-default", False)),
                "cpu_max": int(m.get("cpu-max", 1)),
                "deprecated": bool(m.get("deprecated", False)),
            })
        ms.sort(key=lambda m: _machine_sort_key(m["name"]))
        info["machines"] = ms
    cpus = replies.get("query-cpu-definitions")
    if isinstance(cpus, list):
        info["cpu_models"] = sorted(
            ({"name": c["name"], "usable": not c.get("unavailable-features"),
              "deprecated": bool(c.get("deprecated", False))}
             for c in cpus if isinstance(c, dict) and "name" in c),
            key=lambda c: c["name"])
    return info


def _machine_sort_key(name: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def parse_accel_help(text: str) -> list[str]:
    """Accelerator names from ``qemu-system-x86_64 -accel help``."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.endswith(":") or " " in line:
            continue
        out.append(line)
    return out


def parse_version_text(text: str) -> tuple[str, tuple[int, ...], str]:
    """(version, tuple, package) from ``qemu-system-x86_64 --version``."""
    m = re.search(r"version\s+(\d+)\.(\d+)(?:\.(\d+))?(?:\s*\((.*?)\))?", text)
    if not m:
        return "", (), ""
    tup = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
    return "%d.%d.%d" % tup, tup, (m.group(4) or "").strip()


# --------------------------------------------------------------------------
# host hardware from /proc and /sys


def parse_cpuinfo(text: str) -> dict:
    """Model name, vendor, flags and MHz of the first processor in /proc/cpuinfo."""
    out = {"model_name": "", "vendor": "", "flags": [], "mhz": 0, "processors": 0}
    first = True
    for line in text.splitlines():
        if not line.strip():
            first = False if out["processors"] else first
            continue
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "processor":
            out["processors"] += 1
        if out["processors"] > 1:
            continue
        if key == "model name":
            out["model_name"] = value
        elif key == "vendor_id":
            out["vendor"] = value
        elif key == "flags":
            out["flags"] = value.split()
        elif key == "cpu MHz":
            try:
                out["mhz"] = int(float(value))
            except ValueError:
                pass
    return out


def _read(path: str, default: str = "") -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def _parse_cpulist(text: str) -> list[int]:
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def read_topology(sysfs: str = "/sys") -> dict:
    """CPUs, sockets, cores, threads and NUMA cells from sysfs (libvirt's nodeinfo rules)."""
    cpu_dir = os.path.join(sysfs, "devices/system/cpu")
    online = _read(os.path.join(cpu_dir, "online")).strip()
    cpus = _parse_cpulist(online) if online else list(range(os.cpu_count() or 1))
    packages: dict[int, set] = {}
    threads = 1
    for c in cpus:
        top = os.path.join(cpu_dir, "cpu%d" % c, "topology")
        try:
            pkg = int(_read(os.path.join(top, "physical_package_id"), "0").strip() or 0)
            core = int(_read(os.path.join(top, "core_id"), str(c)).strip() or c)
        except ValueError:
            pkg, core = 0, c
        packages.setdefault(pkg, set()).add(core)
        sib = _read(os.path.join(top, "thread_siblings_list")).strip()
        if sib:
            threads = max(threads, len(_parse_cpulist(sib)))
    cells = []
    node_dir = os.path.join(sysfs, "devices/system/node")
    try:
        names = sorted((n for n in os.listdir(node_dir) if re.fullmatch(r"node\d+", n)),
                       key=lambda n: int(n[4:]))
    except OSError:
        names = []
    for n in names:
        cpulist = _parse_cpulist(_read(os.path.join(node_dir, n, "cpulist")).strip())
        mem = 0
        m = re.search(r"MemTotal:\s+(\d+)\s*kB", _read(os.path.join(node_dir, n, "meminfo")))
        if m:
            mem = int(m.group(1))
        cells.append({"id": int(n[4:]), "cpus": cpulist, "memory_kib": mem})
    sockets = max(1, len(packages))
    cores = max(1, max((len(v) for v in packages.values()), default=1))
    ncpu = len(cpus) or 1
    if sockets * cores * threads != ncpu:
        # libvirt's fallback when the topology does not multiply out
        sockets, cores, threads = 1, ncpu, 1
    return {"cpus": ncpu, "cpu_ids": cpus, "sockets": sockets, "cores": cores,
            "threads": threads, "cells": cells}


def _memtotal_kib(meminfo: str) -> int:
    m = re.search(r"MemTotal:\s+(\d+)\s*kB", meminfo)
    return int(m.group(1)) if m else 0


def _has_iommu_groups(sysfs: str = "/sys") -> bool:
    try:
        return any(True for _ in os.scandir(os.path.join(sysfs, "kernel/iommu_groups")))
    except OSError:
        return False


def _kvm_modules(sysfs: str = "/sys") -> list[str]:
    try:
        return sorted(m for m in os.listdir(os.path.join(sysfs, "module"))
                      if m == "kvm" or m.startswith("kvm_"))
    except OSError:
        return []


# --------------------------------------------------------------------------
# KVM


def _kvm_ioctls(dev: str = "/dev/kvm") -> dict:
    """API version, extensions and KVM_CREATE_VM through libc's ioctl (cffi, ABI mode).

    These prove that the kernel side of KVM answers; they do not prove that it
    can run a guest (a paravirtual KVM answers all of them).
    """
    from cffi import FFI

    ffi = FFI()
    ffi.cdef("int ioctl(int fd, unsigned long request, ...);")
    libc = ffi.dlopen(None)
    out: dict = {"api_version": None, "extensions": {}, "vm_create": False, "error": ""}
    fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    try:
        def ioctl(fd_: int, req: int, arg: int = 0) -> int:
            return libc.ioctl(fd_, ffi.cast("unsigned long", req), ffi.cast("unsigned long", arg))

        api = ioctl(fd, _KVM_GET_API_VERSION)
        out["api_version"] = api if api >= 0 else None
        if api != 12:
            out["error"] = "KVM_GET_API_VERSION returned %d, expected 12" % api
            return out
        for name, cap in _KVM_CAPS.items():
            r = ioctl(fd, _KVM_CHECK_EXTENSION, cap)
            out["extensions"][name] = max(r, 0)
        mmap = ioctl(fd, _KVM_GET_VCPU_MMAP_SIZE)
        out["extensions"]["vcpu_mmap_size"] = max(mmap, 0)
        vm = ioctl(fd, _KVM_CREATE_VM, 0)
        if vm < 0:
            out["error"] = "KVM_CREATE_VM failed: %s" % os.strerror(ffi.errno)
        else:
            out["vm_create"] = True
            os.close(vm)
    finally:
        os.close(fd)
    return out


def _payload_argv(qemu: str, bios: str, accel: str, cpu: str | None) -> list[str]:
    argv = [qemu, "-accel", accel, "-machine", "pc", "-m", "16", "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-bios", bios,
            "-chardev", "stdio,id=dbg,signal=off",
            "-device", "isa-debugcon,iobase=0xe9,chardev=dbg",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=1"]
    if cpu:
        argv += ["-cpu", cpu]
    return argv


class _Run(_Record):
    name: str
    argv: list[str]
    proc: object = None
    out: bytes = b""
    err: bytes = b""
    status: int | None = None
    timed_out: bool = False
    internal_error: bool = False
    seconds: float = 0.0
    spawn_error: str = ""
    open_pipes: int = 2


def _run_parallel(runs: list[_Run], timeout: float, stdin_data: dict[str, bytes] | None = None) -> None:
    """Run QEMU processes side by side, drain their output, kill what overruns.

    A QEMU that reports "KVM internal error" is killed at once: it would sit
    stopped forever, and the message is the answer.
    """
    import selectors
    import subprocess

    stdin_data = stdin_data or {}
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    live = []
    for r in runs:
        try:
            r.proc = subprocess.Popen(
                r.argv, stdin=subprocess.PIPE if r.name in stdin_data else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)
        except OSError as e:
            r.spawn_error = str(e)
            continue
        if r.name in stdin_data:
            # written whole, but left open: QEMU drops queued QMP commands when its
            # monitor sees EOF, so the script ends with "quit" and we close after exit
            try:
                r.proc.stdin.write(stdin_data[r.name])
                r.proc.stdin.flush()
            except OSError:
                pass
        for pipe, which in ((r.proc.stdout, "out"), (r.proc.stderr, "err")):
            os.set_blocking(pipe.fileno(), False)
            sel.register(pipe, selectors.EVENT_READ, (r, which))
        live.append(r)
    deadline = start + timeout
    open_pipes = 2 * len(live)
    while open_pipes:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for key, _ in sel.select(min(left, 0.1)):
            r, which = key.data
            try:
                chunk = os.read(key.fileobj.fileno(), 65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                sel.unregister(key.fileobj)
                open_pipes -= 1
                r.open_pipes -= 1
                if not r.open_pipes:
                    r.seconds = time.monotonic() - start
                continue
            if which == "out":
                r.out += chunk
            else:
                r.err += chunk
                if b"KVM internal error" in r.err and not r.internal_error:
                    r.internal_error = True
                    r.proc.kill()
    for r in live:
        try:
            r.status = r.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            r.timed_out = not r.internal_error
            r.proc.kill()
            r.status = r.proc.wait()
        if not r.seconds or r.open_pipes:
            r.seconds = time.monotonic() - start
        if r.proc.stdin is not None:
            try:
                r.proc.stdin.close()
            except OSError:
                pass
        for pipe, attr in ((r.proc.stdout, "out"), (r.proc.stderr, "err")):
            try:
                rest = pipe.read() or b""
            except (OSError, ValueError, TypeError):
                rest = b""
            setattr(r, attr, getattr(r, attr) + rest)
            try:
                sel.unregister(pipe)
            except (KeyError, ValueError):
                pass
            pipe.close()
    sel.close()


def _last_stage(out: bytes) -> str:
    text = out.decode("ascii", "replace")
    stages = [c for c in text if c in _STAGES]
    return stages[-1] if stages else ""


def _qemu_error_line(err: bytes) -> str:
    lines = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    lines = [ln for ln in lines if "warning:" not in ln]
    for ln in lines:
        if "error" in ln.lower():
            return ln.replace("qemu-system-x86_64: ", "")
    return lines[-1].replace("qemu-system-x86_64: ", "") if lines else ""


def judge_payload_run(r: _Run, accel: str = "KVM") -> tuple[bool, str]:
    """(ran to the end?, reason) for one test-guest run."""
    if r.spawn_error:
        return False, "could not start QEMU: %s" % r.spawn_error
    if r.status == _PAYLOAD_OK_STATUS and r.out.rstrip().endswith(b"*"):
        return True, "a 64-bit test guest ran to its end under %s in %.2f s" % (accel, r.seconds)
    where = _STAGES.get(_last_stage(r.out), "")
    if r.internal_error:
        sub = re.search(rb"Suberror:\s*(\d+)", r.err)
        kind = {b"1": "emulation failure"}.get(sub.group(1), "suberror " + sub.group(1).decode()) if sub else ""
        return False, ("a 64-bit test guest hit a KVM internal error%s %s"
                       % (" (%s)" % kind if kind else "", where))
    if r.timed_out:
        return False, ("a 64-bit test guest made no progress under %s for %.1f s; it stopped %s"
                       % (accel, r.seconds, where))
    msg = _qemu_error_line(r.err)
    if r.status == -6:
        return False, "QEMU aborted (%s)" % (msg or "no message")
    if r.status is not None and r.status < 0:
        return False, "QEMU was killed by signal %d (%s)" % (-r.status, msg or "no message")
    if r.status == 0:
        return False, "the test guest reset (triple fault) %s" % where
    return False, "QEMU exited with status %s: %s" % (r.status, msg or "no message")


def _probe_kvm(qemu: str | None, dev: str = "/dev/kvm", timeout: float = KVM_TEST_TIMEOUT,
               extra_runs: list[_Run] | None = None,
               stdin_data: dict[str, bytes] | None = None) -> tuple[KvmInfo, bool | None]:
    """Decide whether KVM can run an ordinary 64-bit guest.  Returns (KvmInfo, tcg_ok).

    The steps, cheapest first; each one stops the probe with its reason:

    1. ``/dev/kvm`` exists and this user can open it read-write.  Proves only
       that a module created the node and the permissions allow us in.
    2. ioctls on the device through libc (cffi, ABI mode):
       ``KVM_GET_API_VERSION`` must be 12, the extensions QEMU cannot do
       without (user memory, TSS address, extended CPUID) must be there, and
       ``KVM_CREATE_VM`` must give a VM.  Proves the kernel side answers the
       API; a paravirtual KVM (kvm_pvm) passes all of this.
    3. A test guest (``tests/data/kvm-probe-payload.S``, 366 bytes of code)
       runs as the firmware of a 16 MiB ``pc`` machine under ``-accel kvm``:
       real mode → 32-bit protected mode → paging + EFER.LME (MSR writes) →
       64-bit mode → an exception through a 64-bit IDT and back with iretq →
       RAM written and read through the page tables → 64-bit arithmetic →
       a write to isa-debug-exit, which makes QEMU exit with status 85.
       Reaching status 85 proves that KVM ran the instructions every ordinary
       x86-64 kernel runs in its first milliseconds, including the exception
       path (where a paravirtual KVM fails: "KVM internal error", or a spin).
       A progress byte per step on isa-debugcon says where it stopped.
    4. The same guest with ``-cpu host``: QEMU must accept the host CPU model
       (on kvm_pvm it aborts with ``failed to set MSR 0x10a``).  Decides
       host-passthrough / host-model only.
    5. The same guest under TCG, side by side, is the control: if it finishes
       and KVM does not, KVM is stuck (not the machine slow).  If neither
       finishes, nothing is decided and nothing is cached.

    Steps 3-5 run in parallel and take about 50 ms on a working host; a stuck
    KVM costs ``timeout`` seconds.
    """
    import tempfile

    info = KvmInfo(modules=_kvm_modules())
    t0 = time.monotonic()
    tcg_ok: bool | None = None
    extra_runs = extra_runs or []

    def finish() -> tuple[KvmInfo, bool | None]:
        if extra_runs and extra_runs[0].proc is None:
            _run_parallel(extra_runs, timeout, stdin_data)
        info.seconds = round(time.monotonic() - t0, 3)
        return info, tcg_ok

    info.present = os.path.exists(dev)
    if not info.present:
        info.reason = "%s does not exist (no KVM module loaded%s)" % (
            dev, "" if info.modules else "; load kvm_intel or kvm_amd")
        return finish()
    try:
        ioc = _kvm_ioctls(dev)
    except PermissionError:
        info.reason = "permission denied opening %s (add the user to the group that owns it, usually 'kvm')" % dev
        return finish()
    except ImportError as e:
        info.accessible = os.access(dev, os.R_OK | os.W_OK)
        info.reason = "cannot probe %s: cffi is missing (%s)" % (dev, e)
        info.decided = False
        return finish()
    except OSError as e:
        info.reason = "cannot open %s: %s" % (dev, e.strerror or e)
        return finish()
    info.accessible = True
    info.api_version = ioc["api_version"]
    info.extensions = ioc["extensions"]
    info.vm_create = ioc["vm_create"]
    if ioc["error"]:
        info.reason = ioc["error"]
        return finish()
    missing = [c for c in _KVM_REQUIRED_CAPS if not info.extensions.get(c)]
    if missing:
        info.reason = "KVM lacks the capabilities QEMU needs: %s" % ", ".join(missing)
        return finish()
    if not qemu:
        info.reason = "no %s to run a test guest with" % QEMU_NAME
        info.decided = False
        return finish()

    with tempfile.TemporaryDirectory(prefix="vsh-kvm-probe-") as tmp:
        bios = os.path.join(tmp, "payload.bin")
        with open(bios, "wb") as f:
            f.write(payload_image())
        kvm_run = _Run("kvm", _payload_argv(qemu, bios, "kvm", None))
        host_run = _Run("kvm-host", _payload_argv(qemu, bios, "kvm", "host"))
        tcg_run = _Run("tcg", _payload_argv(qemu, bios, "tcg", None))
        _run_parallel([kvm_run, host_run, tcg_run] + extra_runs, timeout, stdin_data)
    ok, why = judge_payload_run(kvm_run, "KVM")
    tcg_ok, tcg_why = judge_payload_run(tcg_run, "TCG")
    host_ok, host_why = judge_payload_run(host_run, "KVM with -cpu host")
    info.host_cpu_usable = ok and host_ok
    info.host_cpu_reason = host_why if not host_ok else ""
    if ok:
        info.usable = True
        info.reason = why
        if not host_ok:
            info.reason += "; but -cpu host fails: " + host_why
    elif kvm_run.timed_out and not tcg_ok:
        info.decided = False
        info.reason = ("undecided: the test guest finished under neither KVM nor TCG within %.1f s "
                       "(host too busy?); KVM: %s; TCG: %s" % (timeout, why, tcg_why))
    else:
        mod = " (module %s)" % ", ".join(m for m in info.modules if m != "kvm") if len(info.modules) > 1 else ""
        info.reason = "KVM is present%s but cannot run an ordinary guest: %s" % (mod, why)
        if not host_ok:
            info.reason += "; -cpu host: " + host_why
    return finish()


# --------------------------------------------------------------------------
# probe + cache


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "vsh")


def cache_key(qemu: str | None, dev: str = "/dev/kvm") -> dict:
    """What must not have changed for a cached probe to stay true."""
    key: dict = {"schema": CACHE_SCHEMA, "kernel": os.uname().release,
                 "kvm_modules": _kvm_modules(), "euid": os.geteuid()}
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


def _load_cache(path: str, key: dict) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key or not isinstance(doc.get("data"), dict):
        return None
    return doc["data"]


def _write_cache(path: str, key: dict, data: dict) -> None:
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


def _probe_qemu_and_kvm(qemu: str | None) -> dict:
    data: dict = {"qemu": {}, "accelerators": [], "kvm": {}, "tcg_usable": False}
    runs: list[_Run] = []
    stdin_data: dict[str, bytes] = {}
    if qemu:
        runs = [_Run("qmp", _qmp_info_argv(qemu)), _Run("accel", [qemu, "-accel", "help"])]
        stdin_data = {"qmp": _qmp_script()}
    kvm, tcg_ok = _probe_kvm(qemu, extra_runs=runs, stdin_data=stdin_data)
    if qemu:
        qmp_run, accel_run = runs
        data["qemu"] = parse_qemu_info(parse_qmp_replies(qmp_run.out.decode("utf-8", "replace")))
        if not data["qemu"]["version"]:
            data["qemu"]["error"] = _qemu_error_line(qmp_run.err) or "no QMP answer"
        data["accelerators"] = parse_accel_help(accel_run.out.decode("utf-8", "replace"))
        if tcg_ok is None and "tcg" in data["accelerators"]:
            # no KVM test ran, so no TCG control either: run the test guest under TCG alone
            import tempfile

            with tempfile.TemporaryDirectory(prefix="vsh-tcg-probe-") as tmp:
                bios = os.path.join(tmp, "payload.bin")
                with open(bios, "wb") as f:
                    f.write(payload_image())
                r = _Run("tcg", _payload_argv(qemu, bios, "tcg", None))
                _run_parallel([r], KVM_TEST_TIMEOUT)
                tcg_ok = judge_payload_run(r, "TCG")[0]
    data["tcg_usable"] = bool(tcg_ok)
    data["kvm"] = kvm.asdict()
    return data


def probe(cache_dir: str | None = None, refresh: bool = False, *, qemu: str | None = None) -> HostInfo:
    """Probe the host, using the cached QEMU/KVM answers when they still hold."""
    t0 = time.monotonic()
    qemu = qemu or find_qemu()
    path = os.path.join(cache_dir or _default_cache_dir(), CACHE_FILE)
    key = cache_key(qemu)
    data = None if refresh else _load_cache(path, key)
    from_cache = data is not None
    if data is None:
        data = _probe_qemu_and_kvm(qemu)
        if data["kvm"].get("decided", True):
            _write_cache(path, key, data)
    host = _host_from_data(qemu, data)
    _fill_hardware(host)
    host.from_cache = from_cache
    host.probe_seconds = round(time.monotonic() - t0, 3)
    return host


def _host_from_data(qemu: str | None, data: dict) -> HostInfo:
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


def _fill_hardware(host: HostInfo, proc: str = "/proc", sysfs: str = "/sys") -> None:
    uts = os.uname()
    host.arch = uts.machine or "x86_64"
    host.kernel_release = uts.release
    ci = parse_cpuinfo(_read(os.path.join(proc, "cpuinfo")))
    host.cpu_model_name = ci["model_name"]
    host.cpu_vendor = ci["vendor"]
    host.cpu_flags = ci["flags"]
    host.mhz = ci["mhz"]
    topo = read_topology(sysfs)
    host.cpus = topo["cpus"]
    host.sockets = topo["sockets"]
    host.cores_per_socket = topo["cores"]
    host.threads_per_core = topo["threads"]
    host.numa_cells = topo["cells"]
    host.memory_kib = _memtotal_kib(_read(os.path.join(proc, "meminfo")))
    if not host.numa_cells:
        host.numa_cells = [{"id": 0, "cpus": topo["cpu_ids"], "memory_kib": host.memory_kib}]
    host.iommu_groups = _has_iommu_groups(sysfs)


# --------------------------------------------------------------------------
# reports


def nodeinfo(host: HostInfo) -> dict:
    """virsh nodeinfo's fields (sockets are per NUMA cell, as libvirt counts them)."""
    cells = max(1, len(host.numa_cells))
    sockets = host.sockets // cells if host.sockets % cells == 0 and host.sockets >= cells else host.sockets
    return {
        "CPU model": host.arch,
        "CPU(s)": host.cpus,
        "CPU frequency": host.mhz,
        "CPU socket(s)": max(1, sockets),
        "Core(s) per socket": host.cores_per_socket,
        "Thread(s) per core": host.threads_per_core,
        "NUMA cell(s)": cells,
        "Memory size": host.memory_kib,
    }


def _cgroup_controllers(sysfs: str = "/sys") -> tuple[int, set[str]] | None:
    """(cgroup version, controllers) of the host's cgroup mount, or None."""
    root = os.path.join(sysfs, "fs/cgroup")
    v2 = _read(os.path.join(root, "cgroup.controllers"))
    if v2:
        return 2, set(v2.split())
    try:
        names = os.listdir(root)
    except OSError:
        return None
    return 1, {part for n in names for part in n.split(",")}


def host_validate(host: HostInfo, sysfs: str = "/sys", proc: str = "/proc") -> list[tuple[str, str, str]]:
    """virt-host-validate's QEMU section: (check, 'PASS'|'WARN'|'FAIL', reason)."""
    res: list[tuple[str, str, str]] = []

    def add(check: str, verdict: str, reason: str = "") -> None:
        res.append(("QEMU: " + check, verdict, reason))

    if host.qemu_path:
        add("Checking for %s" % QEMU_NAME, "PASS", "%s %s" % (host.qemu_path, host.qemu_version))
    else:
        add("Checking for %s" % QEMU_NAME, "FAIL",
            "not found in $PATH, %s; install the qemu-system-x86 package" % ", ".join(QEMU_DIRS))
    flags = set(host.cpu_flags)
    if flags & {"vmx", "svm"}:
        add("Checking for hardware virtualization", "PASS", "")
    else:
        add("Checking for hardware virtualization", "WARN",
            "the CPU shows neither vmx nor svm; only emulated (TCG) or paravirtual KVM is possible")
    k = host.kvm
    if k.present:
        add("Checking if device /dev/kvm exists", "PASS", "")
        if k.accessible:
            add("Checking if device /dev/kvm is accessible", "PASS", "")
        else:
            add("Checking if device /dev/kvm is accessible", "FAIL", k.reason)
    else:
        add("Checking if device /dev/kvm exists", "WARN" if not flags & {"vmx", "svm"} else "FAIL",
            "load the kvm_intel or kvm_amd module and enable virtualization in the firmware")
    if k.accessible:
        if k.usable:
            add("Checking if KVM can run an ordinary guest", "PASS", k.reason)
        elif not k.decided:
            add("Checking if KVM can run an ordinary guest", "WARN", k.reason)
        else:
            add("Checking if KVM can run an ordinary guest", "FAIL",
                k.reason + "; domains need type='qemu' (TCG)")
        if k.usable:
            add("Checking if KVM accepts the host CPU model", "PASS" if k.host_cpu_usable else "WARN",
                k.host_cpu_reason)
    if host.tcg:
        add("Checking for TCG (emulation) support", "PASS", "")
    elif host.qemu_path:
        add("Checking for TCG (emulation) support", "FAIL",
            "the test guest did not run under TCG" if "tcg" in host.accelerators
            else "this QEMU has no TCG accelerator")
    for dev, what in (("/dev/vhost-net", "vhost-net"), ("/dev/net/tun", "tun")):
        if os.path.exists(dev):
            add("Checking if device %s exists" % dev, "PASS", "")
        else:
            add("Checking if device %s exists" % dev, "WARN",
                "load the %s module (needed only for bridged networking)" % what)
    cg = _cgroup_controllers(sysfs)
    for c in ("cpu", "cpuacct", "cpuset", "memory", "devices", "blkio"):
        name = "Checking for cgroup '%s' controller support" % c
        if cg is None:
            add(name, "WARN", "no cgroup filesystem at /sys/fs/cgroup (vsh does not need one)")
            continue
        version, ctrls = cg
        if version == 2:
            # v2 folds cpuacct into cpu, blkio into io, and does devices through BPF
            want = {"cpuacct": "cpu", "blkio": "io"}.get(c, c)
            ok = c == "devices" or want in ctrls
        else:
            ok = c in ctrls
        add(name, "PASS" if ok else "WARN",
            "" if ok else "controller not mounted (vsh does not use cgroups; resource tuning is ignored)")
    if host.iommu_groups:
        add("Checking for device assignment IOMMU support", "PASS", "")
        add("Checking if IOMMU is enabled by kernel", "PASS", "")
    else:
        dmar = os.path.isdir(os.path.join(sysfs, "class/iommu")) and os.listdir(os.path.join(sysfs, "class/iommu"))
        add("Checking for device assignment IOMMU support",
            "PASS" if dmar else "WARN", "" if dmar else "no IOMMU found; <hostdev> PCI passthrough is refused")
        hint = "intel_iommu=on" if host.cpu_vendor == "GenuineIntel" else "amd_iommu=on"
        add("Checking if IOMMU is enabled by kernel", "WARN",
            "no IOMMU groups in /sys/kernel/iommu_groups; add %s to the kernel command line" % hint)
    sec = flags & {"sev", "sev_es", "tdx_guest"}
    add("Checking for secure guest support", "WARN",
        "vsh does not support secure guests" if sec else "this platform has no secure guest support")
    return res


# ---- XML helpers: libvirt's style, 2-space indent, single-quoted attributes


def _tag(name: str, attrs: dict | None = None, text: str | None = None, close: bool = True) -> str:
    from vsh.core.xml import escape_attr, escape_text

    a = "".join(" %s='%s'" % (k, escape_attr(str(v))) for k, v in (attrs or {}).items() if v is not None)
    if text is not None:
        return "<%s%s>%s</%s>" % (name, a, escape_text(str(text)), name)
    return "<%s%s%s>" % (name, a, "/" if close else "")


class _XW:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def leaf(self, name: str, attrs: dict | None = None, text: str | None = None) -> None:
        self.lines.append("  " * self.depth + _tag(name, attrs, text))

    def open(self, name: str, attrs: dict | None = None) -> None:
        self.lines.append("  " * self.depth + _tag(name, attrs, close=False))
        self.depth += 1

    def close(self, name: str) -> None:
        self.depth -= 1
        self.lines.append("  " * self.depth + "</%s>" % name)

    def blank(self) -> None:
        self.lines.append("")

    def enum(self, name: str, values) -> None:
        values = list(values)
        if not values:
            self.leaf("enum", {"name": name})
            return
        self.open("enum", {"name": name})
        for v in values:
            self.leaf("value", text=v)
        self.close("enum")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _host_uuid(sysfs: str = "/sys") -> str:
    u = _read(os.path.join(sysfs, "class/dmi/id/product_uuid")).strip().lower()
    if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", u) \
            and u not in ("00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"):
        return u
    mid = _read("/etc/machine-id").strip().lower()
    if re.fullmatch(r"[0-9a-f]{32}", mid):
        return "%s-%s-%s-%s-%s" % (mid[:8], mid[8:12], mid[12:16], mid[16:20], mid[20:])
    return "00000000-0000-0000-0000-000000000000"


def _vendor_name(vendor: str) -> str:
    return {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(vendor, vendor or "unknown")


def capabilities_xml(host: HostInfo) -> str:
    """``virsh capabilities`` in libvirt's format."""
    w = _XW()
    w.open("capabilities")
    w.blank()
    w.open("host")
    w.leaf("uuid", text=_host_uuid())
    w.open("cpu")
    w.leaf("arch", text=host.arch)
    if host.cpu_model_name:
        w.leaf("model", text=host.cpu_model_name)
    w.leaf("vendor", text=_vendor_name(host.cpu_vendor))
    w.leaf("topology", {"sockets": host.sockets, "dies": 1, "cores": host.cores_per_socket,
                        "threads": host.threads_per_core})
    for flag in sorted(set(host.cpu_flags)):
        if re.fullmatch(r"[a-z0-9_.-]+", flag):
            w.leaf("feature", {"name": flag})
    w.leaf("pages", {"unit": "KiB", "size": 4})
    if "pse" in host.cpu_flags:
        w.leaf("pages", {"unit": "KiB", "size": 2048})
    if "pdpe1gb" in host.cpu_flags:
        w.leaf("pages", {"unit": "KiB", "size": 1048576})
    w.close("cpu")
    w.leaf("power_management")
    w.leaf("iommu", {"support": "yes" if host.iommu_groups else "no"})
    w.open("topology")
    cells = host.numa_cells or [{"id": 0, "cpus": list(range(host.cpus)), "memory_kib": host.memory_kib}]
    w.open("cells", {"num": len(cells)})
    for cell in cells:
        w.open("cell", {"id": cell["id"]})
        w.leaf("memory", {"unit": "KiB"}, str(cell["memory_kib"]))
        w.open("distances")
        for other in cells:
            w.leaf("sibling", {"id": other["id"], "value": 10 if other["id"] == cell["id"] else 20})
        w.close("distances")
        w.open("cpus", {"num": len(cell["cpus"])})
        for c in cell["cpus"]:
            w.leaf("cpu", {"id": c})
        w.close("cpus")
        w.close("cell")
    w.close("cells")
    w.close("topology")
    w.open("secmodel")
    w.leaf("model", text="none")
    w.leaf("doi", text="0")
    w.close("secmodel")
    w.close("host")
    w.blank()
    if host.qemu_path and host.machines:
        w.open("guest")
        w.leaf("os_type", text="hvm")
        w.open("arch", {"name": "x86_64"})
        w.leaf("wordsize", text="64")
        w.leaf("emulator", text=host.qemu_path)
        for m in host.machines:
            w.leaf("machine", {"maxCpus": m.cpu_max}, m.name)
            if m.alias:
                w.leaf("machine", {"canonical": m.name, "maxCpus": m.cpu_max}, m.alias)
        if host.tcg:
            w.leaf("domain", {"type": "qemu"})
        if host.kvm.usable:
            w.leaf("domain", {"type": "kvm"})
        w.close("arch")
        w.open("features")
        w.leaf("acpi", {"default": "on", "toggle": "yes"})
        w.leaf("apic", {"default": "on", "toggle": "no"})
        w.leaf("cpuselection")
        w.leaf("deviceboot")
        w.leaf("disksnapshot", {"default": "on", "toggle": "no"})
        w.close("features")
        w.close("guest")
        w.blank()
    w.close("capabilities")
    return w.text()


def cpu_model_vendor(name: str) -> str:
    """The CPU vendor a QEMU model imitates ('unknown' for the generic ones)."""
    n = name.lower()
    if re.match(r"(qemu|kvm)(32|64)|486|base", n):
        return "unknown"
    if re.match(r"(epyc|opteron|phenom|athlon)", n):
        return "AMD"
    if n.startswith("dhyana"):
        return "Hygon"
    return "Intel"


#: Machine chosen when a domain names none (vsh/kvm/argv.py uses the same).
DEFAULT_MACHINE = "q35"


def domcapabilities_xml(host: HostInfo, machine: str | None = None, domtype: str | None = None) -> str:
    """``virsh domcapabilities`` for what vsh's argv builder supports on this host."""
    if not host.qemu_path:
        raise Unsupported("no %s found on this host" % QEMU_NAME)
    domtype = domtype or default_domain_type(host)
    if domtype == "kvm" and not host.kvm.usable:
        raise Unsupported("KVM is not usable on this host: %s" % (host.kvm.reason or "no /dev/kvm"),
                          hint="use --virttype qemu")
    if domtype not in ("kvm", "qemu"):
        raise InvalidArgument("unknown virttype '%s' (kvm or qemu)" % domtype)
    mt = host.machine(machine or DEFAULT_MACHINE)
    if mt is None:
        raise InvalidArgument("machine type '%s' is not supported by %s" % (machine, host.qemu_path))
    is_q35 = "q35" in mt.name
    is_microvm = mt.name == "microvm"
    w = _XW()
    w.open("domainCapabilities")
    w.leaf("path", text=host.qemu_path)
    w.leaf("domain", text=domtype)
    w.leaf("machine", text=mt.name)
    w.leaf("arch", text="x86_64")
    w.leaf("vcpu", {"max": mt.cpu_max})
    w.leaf("iothreads", {"supported": "yes"})
    w.open("os", {"supported": "yes"})
    w.enum("firmware", [])
    w.open("loader", {"supported": "yes"})
    w.enum("type", ["rom"])
    w.enum("readonly", ["yes"])
    w.enum("secure", ["no"])
    w.close("loader")
    w.close("os")
    w.open("cpu")
    host_cpu = domtype == "kvm" and host.kvm.host_cpu_usable
    if host_cpu:
        w.open("mode", {"name": "host-passthrough", "supported": "yes"})
        w.enum("hostPassthroughMigratable", ["off"])
        w.close("mode")
    else:
        w.leaf("mode", {"name": "host-passthrough", "supported": "no"})
    w.open("mode", {"name": "maximum", "supported": "yes"})
    w.enum("maximumMigratable", ["off"])
    w.close("mode")
    w.leaf("mode", {"name": "host-model", "supported": "yes" if host_cpu else "no"})
    models = [c for c in host.cpu_models if c.name not in ("host", "max", "base")]
    if models:
        w.open("mode", {"name": "custom", "supported": "yes"})
        for c in models:
            # usability was measured under TCG; under KVM QEMU decides at start
            attrs = {"usable": "yes" if c.usable else ("unknown" if domtype == "kvm" else "no")}
            if c.deprecated:
                attrs["deprecated"] = "yes"
            attrs["vendor"] = cpu_model_vendor(c.name)
            w.leaf("model", attrs, c.name)
        w.close("mode")
    else:
        w.leaf("mode", {"name": "custom", "supported": "no"})
    w.close("cpu")
    w.open("memoryBacking", {"supported": "yes"})
    w.enum("sourceType", ["anonymous"])
    w.close("memoryBacking")
    w.open("devices")
    w.open("disk", {"supported": "yes"})
    w.enum("diskDevice", ["disk", "cdrom"])
    buses = ["virtio"] if is_microvm else (["scsi", "virtio", "sata"] + ([] if is_q35 else ["ide"]))
    w.enum("bus", sorted(buses))
    w.enum("model", ["virtio"])
    w.close("disk")
    w.open("graphics", {"supported": "yes"})
    w.enum("type", ["vnc"])
    w.close("graphics")
    w.open("video", {"supported": "yes"})
    w.enum("modelType", ["none"] if is_microvm else ["bochs", "none", "vga", "virtio"])
    w.close("video")
    if is_microvm or not host.iommu_groups:
        w.leaf("hostdev", {"supported": "no"})
    else:
        w.open("hostdev", {"supported": "yes"})
        w.enum("mode", ["subsystem"])
        w.enum("startupPolicy", [])
        w.enum("subsysType", ["pci"])
        w.enum("capsType", [])
        w.enum("pciBackend", ["vfio"])
        w.close("hostdev")
    w.open("rng", {"supported": "yes"})
    w.enum("model", ["virtio"])
    w.enum("backendModel", ["builtin", "random"])
    w.close("rng")
    w.close("devices")
    w.open("features")
    w.leaf("gic", {"supported": "no"})
    w.leaf("vmcoreinfo", {"supported": "no"})
    w.leaf("genid", {"supported": "no"})
    w.leaf("backingStoreInput", {"supported": "yes"})
    w.leaf("backup", {"supported": "no"})
    w.leaf("sev", {"supported": "no"})
    w.close("features")
    w.close("domainCapabilities")
    return w.text()
