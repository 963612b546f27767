"""Can KVM run an ordinary guest?  A test guest run under KVM, KVM with ``-cpu host`` and
TCG side by side (see ``probe_kvm`` for the steps and why each proves what it proves).

``/dev/kvm`` existing proves nothing: on a paravirtual nested host (``kvm_pvm``) the
device opens and ``KVM_CREATE_VM`` works, yet an ordinary guest never gets past its
first exception.  subprocess, selectors, tempfile and cffi are imported only when a
probe runs; the host probe imports this module only when its cache misses.
"""

from __future__ import annotations

import os
import re
import time

from vsh.kvm.host.hardware import kvm_modules
from vsh.kvm.host.qemu import QEMU_NAME
from vsh.kvm.host.records import KvmInfo, Record


#: How long the KVM test guest may take before KVM is declared stuck.
KVM_TEST_TIMEOUT = 1.5


#: The KVM test guest's exit status when it reached its last step.
PAYLOAD_OK_STATUS = (0x2A << 1) | 1


KVM_GET_API_VERSION = 0xAE00


KVM_CREATE_VM = 0xAE01


KVM_CHECK_EXTENSION = 0xAE03


KVM_GET_VCPU_MMAP_SIZE = 0xAE04


KVM_CAPS = {
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
KVM_REQUIRED_CAPS = ("user_memory", "set_tss_addr", "ext_cpuid")


PAYLOAD_HEX = (
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


RESET_VECTOR_HEX = "ea0000" + "00f0"


STAGES = {
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
    code = bytes.fromhex(PAYLOAD_HEX)
    image = bytearray(0x10000)
    image[: len(code)] = code
    vec = bytes.fromhex(RESET_VECTOR_HEX)
    image[0xFFF0 : 0xFFF0 + len(vec)] = vec
    return bytes(image)


def kvm_ioctls(dev: str = "/dev/kvm") -> dict:
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

        api = ioctl(fd, KVM_GET_API_VERSION)
        out["api_version"] = api if api >= 0 else None
        if api != 12:
            out["error"] = "KVM_GET_API_VERSION returned %d, expected 12" % api
            return out
        for name, cap in KVM_CAPS.items():
            r = ioctl(fd, KVM_CHECK_EXTENSION, cap)
            out["extensions"][name] = max(r, 0)
        mmap = ioctl(fd, KVM_GET_VCPU_MMAP_SIZE)
        out["extensions"]["vcpu_mmap_size"] = max(mmap, 0)
        vm = ioctl(fd, KVM_CREATE_VM, 0)
        if vm < 0:
            out["error"] = "KVM_CREATE_VM failed: %s" % os.strerror(ffi.errno)
        else:
            out["vm_create"] = True
            os.close(vm)
    finally:
        os.close(fd)
    return out


def payload_argv(qemu: str, bios: str, accel: str, cpu: str | None) -> list[str]:
    """The QEMU argv that runs the test guest as the firmware of a small pc machine."""
    argv = [qemu, "-accel", accel, "-machine", "pc", "-m", "16", "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-bios", bios,
            "-chardev", "stdio,id=dbg,signal=off",
            "-device", "isa-debugcon,iobase=0xe9,chardev=dbg",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=1"]
    if cpu:
        argv += ["-cpu", cpu]
    return argv


class Run(Record):
    """One QEMU process of a probe: its argv, output, exit status and what went wrong."""

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


def run_parallel(runs: list[Run], timeout: float, stdin_data: dict[str, bytes] | None = None) -> None:
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


def last_stage(out: bytes) -> str:
    """The last progress byte the test guest wrote."""
    text = out.decode("ascii", "replace")
    stages = [c for c in text if c in STAGES]
    return stages[-1] if stages else ""


def qemu_error_line(err: bytes) -> str:
    """The line of QEMU's stderr that says what went wrong (warnings skipped)."""
    lines = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    lines = [ln for ln in lines if "warning:" not in ln]
    for ln in lines:
        if "error" in ln.lower():
            return ln.replace("qemu-system-x86_64: ", "")
    return lines[-1].replace("qemu-system-x86_64: ", "") if lines else ""


def judge_payload_run(r: Run, accel: str = "KVM") -> tuple[bool, str]:
    """(ran to the end?, reason) for one test-guest run."""
    if r.spawn_error:
        return False, "could not start QEMU: %s" % r.spawn_error
    if r.status == PAYLOAD_OK_STATUS and r.out.rstrip().endswith(b"*"):
        return True, "a 64-bit test guest ran to its end under %s in %.2f s" % (accel, r.seconds)
    where = STAGES.get(last_stage(r.out), "")
    if r.internal_error:
        sub = re.search(rb"Suberror:\s*(\d+)", r.err)
        kind = {b"1": "emulation failure"}.get(sub.group(1), "suberror " + sub.group(1).decode()) if sub else ""
        return False, ("a 64-bit test guest hit a KVM internal error%s %s"
                       % (" (%s)" % kind if kind else "", where))
    if r.timed_out:
        return False, ("a 64-bit test guest made no progress under %s for %.1f s; it stopped %s"
                       % (accel, r.seconds, where))
    msg = qemu_error_line(r.err)
    if r.status == -6:
        return False, "QEMU aborted (%s)" % (msg or "no message")
    if r.status is not None and r.status < 0:
        return False, "QEMU was killed by signal %d (%s)" % (-r.status, msg or "no message")
    if r.status == 0:
        return False, "the test guest reset (triple fault) %s" % where
    return False, "QEMU exited with status %s: %s" % (r.status, msg or "no message")


def probe_kvm(qemu: str | None, dev: str = "/dev/kvm", timeout: float = KVM_TEST_TIMEOUT,
               extra_runs: list[Run] | None = None,
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

    info = KvmInfo(modules=kvm_modules())
    t0 = time.monotonic()
    tcg_ok: bool | None = None
    extra_runs = extra_runs or []

    def finish() -> tuple[KvmInfo, bool | None]:
        if extra_runs and extra_runs[0].proc is None:
            run_parallel(extra_runs, timeout, stdin_data)
        info.seconds = round(time.monotonic() - t0, 3)
        return info, tcg_ok

    info.present = os.path.exists(dev)
    if not info.present:
        info.reason = "%s does not exist (no KVM module loaded%s)" % (
            dev, "" if info.modules else "; load kvm_intel or kvm_amd")
        return finish()
    try:
        ioc = kvm_ioctls(dev)
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
    missing = [c for c in KVM_REQUIRED_CAPS if not info.extensions.get(c)]
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
        kvm_run = Run("kvm", payload_argv(qemu, bios, "kvm", None))
        host_run = Run("kvm-host", payload_argv(qemu, bios, "kvm", "host"))
        tcg_run = Run("tcg", payload_argv(qemu, bios, "tcg", None))
        run_parallel([kvm_run, host_run, tcg_run] + extra_runs, timeout, stdin_data)
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


def tcg_runs_payload(qemu: str) -> bool:
    """Whether the test guest runs to its end under TCG alone (when no KVM run needed a control)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vsh-tcg-probe-") as tmp:
        bios = os.path.join(tmp, "payload.bin")
        with open(bios, "wb") as f:
            f.write(payload_image())
        r = Run("tcg", payload_argv(qemu, bios, "tcg", None))
        run_parallel([r], KVM_TEST_TIMEOUT)
        return judge_payload_run(r, "TCG")[0]
