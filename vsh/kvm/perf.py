"""Perf counters on a QEMU process (libvirt's ``<perf>`` events, ``virsh perf``, ``domstats --perf``).

libvirt's QEMU driver opens one counter per enabled event on QEMU's pid with ``inherit``
(perf_event_open(2)) and keeps the descriptors in libvirtd.  vsh's supervisor is the process
that lives as long as QEMU, so it holds them (:class:`Counters`) and answers the values
through its control socket.  A counter on a pid counts that thread alone (and, with
``inherit``, the threads it creates afterwards); QEMU's vCPU and I/O threads exist before
the guest runs, so vsh opens one counter per thread of QEMU (``/proc/PID/task``), each with
``inherit``, and reports their sum: the whole process, as ``perf stat -p`` counts it.

The software events work wherever perf_event_open(2) does (root, or perf_event_paranoid
allowing it).  The hardware ones need a PMU the kernel exposes (a virtual machine often has
none: ENOENT); ``cmt``, ``mbmt`` and ``mbml`` need the ``intel_cqm`` PMU, which Linux
dropped in 4.14.  An event that cannot be opened is refused with the kernel's reason.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import struct

#: perf_event_attr.type values
HARDWARE, SOFTWARE = 0, 1
#: libvirt's event names → (type, config); type None: the intel_cqm PMU's (read from sysfs)
EVENTS = {
    "cmt": (None, 1), "mbmt": (None, 2), "mbml": (None, 3),
    "cpu_cycles": (HARDWARE, 0), "instructions": (HARDWARE, 1), "cache_references": (HARDWARE, 2),
    "cache_misses": (HARDWARE, 3), "branch_instructions": (HARDWARE, 4), "branch_misses": (HARDWARE, 5),
    "bus_cycles": (HARDWARE, 6), "stalled_cycles_frontend": (HARDWARE, 7), "stalled_cycles_backend": (HARDWARE, 8),
    "ref_cpu_cycles": (HARDWARE, 9),
    "cpu_clock": (SOFTWARE, 0), "task_clock": (SOFTWARE, 1), "page_faults": (SOFTWARE, 2),
    "context_switches": (SOFTWARE, 3), "cpu_migrations": (SOFTWARE, 4), "page_faults_min": (SOFTWARE, 5),
    "page_faults_maj": (SOFTWARE, 6), "alignment_faults": (SOFTWARE, 7), "emulation_faults": (SOFTWARE, 8),
}
#: perf_event_open's number per machine
SYSCALL = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "ppc64le": 319, "s390x": 331}
CQM_TYPE = "/sys/bus/event_source/devices/intel_cqm/type"
_ATTR_SIZE = 112            # PERF_ATTR_SIZE_VER5: every field vsh sets
_INHERIT = 1 << 1           # perf_event_attr's flag bits: bit 0 disabled, bit 1 inherit
_FD_CLOEXEC = 1 << 3        # PERF_FLAG_FD_CLOEXEC


class PerfError(OSError):
    pass


def _attr(kind: int, config: int) -> ctypes.Array:
    buf = bytearray(_ATTR_SIZE)
    struct.pack_into("=IIQ", buf, 0, kind, _ATTR_SIZE, config)
    struct.pack_into("=Q", buf, 40, _INHERIT)          # enabled at once, inherited by new threads
    return (ctypes.c_char * _ATTR_SIZE).from_buffer(buf)


@functools.lru_cache(maxsize=None)
def _libc():
    """The C library, for syscall(2) (loaded once: one counter per thread and event)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _open(kind: int, config: int, tid: int) -> int:
    number = SYSCALL.get(platform.machine())
    if number is None:
        raise PerfError(errno.ENOSYS, f"perf_event_open: not known on {platform.machine()}")
    libc = _libc()
    attr = _attr(kind, config)
    fd = libc.syscall(ctypes.c_long(number), ctypes.byref(attr), ctypes.c_int(tid), ctypes.c_int(-1),
                      ctypes.c_int(-1), ctypes.c_ulong(_FD_CLOEXEC))
    if fd < 0:
        err = ctypes.get_errno()
        raise PerfError(err, os.strerror(err))
    return fd


def _why(name: str, kind: int | None, err: PerfError) -> str:
    if kind is None:
        return "the kernel has no intel_cqm perf PMU (Intel CMT/MBM through perf ended with Linux 4.14)"
    if kind == HARDWARE and err.errno in (errno.ENOENT, errno.EOPNOTSUPP, errno.ENODEV):
        return f"the host's CPU exposes no hardware performance counter for it ({err.strerror})"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"perf_event_open on QEMU was refused ({err.strerror}; see /proc/sys/kernel/perf_event_paranoid)"
    return f"perf_event_open: {err.strerror}"


def open_event(name: str, pid: int) -> list[int]:
    """One counter of event ``name`` per thread of process ``pid`` (with ``inherit``); PerfError
    with the reason (:func:`_why`) when the event cannot be counted here."""
    if name not in EVENTS:
        raise PerfError(errno.EINVAL, f"unknown perf event '{name}'")
    kind, config = EVENTS[name]
    fds: list[int] = []
    try:
        if kind is None:
            try:
                with open(CQM_TYPE) as fh:
                    kind = int(fh.read().strip())
            except (OSError, ValueError):
                raise PerfError(errno.ENOENT, _why(name, None, PerfError(errno.ENOENT, ""))) from None
        try:
            tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
        except OSError as exc:
            raise PerfError(exc.errno, f"QEMU (pid {pid}) is gone: {exc.strerror}") from None
        for tid in tids:
            try:
                fds.append(_open(kind, config, tid))
            except PerfError as exc:
                if exc.errno == errno.ESRCH:
                    continue            # the thread ended meanwhile
                raise PerfError(exc.errno, _why(name, kind, exc)) from None
    except PerfError:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def _value(fd: int) -> int:
    data = os.read(fd, 8)
    return struct.unpack("=Q", data)[0] if len(data) == 8 else 0


class Counters:
    """The perf counters the supervisor holds for its QEMU: event name → descriptors."""

    def __init__(self) -> None:
        self.fds: dict[str, list[int]] = {}

    @property
    def enabled(self) -> list[str]:
        return [name for name in EVENTS if name in self.fds]

    def enable(self, pid: int, names) -> None:
        """Open the events ``names`` not open yet; PerfError naming the first that cannot be
        (``strerror`` is ``perf event 'NAME': why``); those opened by this call are closed then."""
        opened = []
        try:
            for name in names:
                if name in self.fds:
                    continue
                try:
                    self.fds[name] = open_event(name, pid)
                except PerfError as exc:
                    raise PerfError(exc.errno, f"perf event '{name}': {exc.strerror}") from None
                opened.append(name)
        except PerfError:
            self.disable(opened)
            raise

    def disable(self, names) -> None:
        for name in names:
            for fd in self.fds.pop(name, []):
                os.close(fd)

    def close(self) -> None:
        self.disable(list(self.fds))

    def values(self) -> dict[str, int]:
        """{event: the sum over QEMU's threads} of the open events, in libvirt's order."""
        return {name: sum(_value(fd) for fd in self.fds[name]) for name in self.enabled}
