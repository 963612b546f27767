"""Start QEMU confined: a private mount namespace with a minimal /dev, no capabilities
(bounding set and ambient set emptied), no_new_privs, and QEMU's unprivileged user and
group, all done in the forked child before it executes QEMU (what libvirt's
``virCommand`` hooks and ``qemuDomainBuildNamespace`` do).

The private /dev holds only ``null``, ``zero``, ``full``, ``random``, ``urandom``,
``ptmx`` with the host's ``/dev/pts`` (pty consoles stay visible to the host), ``kvm``
when the host has it, ``vhost-net`` and ``net/tun`` never (the supervisor opens taps and
passes their fds), and the device nodes the domain names (block-device disks, host
serial ports, a hardware RNG), each owned by QEMU's user: they are new nodes in a
tmpfs of the namespace, so nothing on the host changes.
"""

from __future__ import annotations

import os
import stat

CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NOEXEC, MS_BIND, MS_REC, MS_SLAVE = 0x2, 0x8, 0x1000, 0x4000, 0x80000
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4

#: The nodes every QEMU gets: (name, mode).
BASE_NODES = (("null", 0o666), ("zero", 0o666), ("full", 0o666), ("random", 0o666),
              ("urandom", 0o666), ("ptmx", 0o666))


def _libc():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
    libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    return libc


def _check(rc: int, what: str) -> None:
    if rc != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def device_nodes(paths) -> list[tuple[str, int, int, int]]:
    """(path, mode, rdev, perm) of the host's nodes for the private /dev: the base ones, kvm,
    and every ``/dev/...`` path in ``paths`` that is a character or block device."""
    wanted = [("/dev/" + name, mode) for name, mode in BASE_NODES]
    if os.path.exists("/dev/kvm"):
        wanted.append(("/dev/kvm", 0o600))
    wanted += [(p, 0o600) for p in paths if p.startswith("/dev/")]
    out, seen = [], set()
    for path, perm in wanted:
        path = os.path.normpath(path)
        if path in seen or path == "/dev/pts" or path.startswith("/dev/pts/"):
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            seen.add(path)
            out.append((path, stat.S_IFMT(st.st_mode), st.st_rdev, perm))
    return out


class Plan:
    """What the child does: ``uid``/``gid`` to become, the device nodes of its /dev."""

    def __init__(self, uid: int, gid: int, nodes: list):
        self.uid, self.gid, self.nodes = uid, gid, nodes
        self.libc = _libc()
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            self.cap_last = int(fh.read())


def _private_dev(plan: Plan) -> None:
    libc = plan.libc
    pts = os.open("/dev/pts", os.O_PATH | os.O_DIRECTORY)
    _check(libc.mount(b"tmpfs", b"/dev", b"tmpfs", MS_NOSUID | MS_NOEXEC, b"mode=0755,size=64k"), "mount /dev")
    for path, kind, rdev, perm in plan.nodes:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        os.mknod(path, kind | perm, rdev)
        os.chmod(path, perm)
        if perm == 0o600:
            os.chown(path, plan.uid, plan.gid)
    os.mkdir("/dev/pts", 0o755)
    _check(libc.mount(b"/proc/self/fd/%d" % pts, b"/dev/pts", None, MS_BIND, None), "bind /dev/pts")
    os.close(pts)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, "/dev/" + name)


def enter(plan: Plan) -> None:
    """In the forked child, as root: namespace, /dev, then become QEMU's user for good."""
    libc = plan.libc
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "make / a slave mount")
    _private_dev(plan)
    for cap in range(plan.cap_last + 1):
        _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap} from the bounding set")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    os.setgroups([])
    os.setresgid(plan.gid, plan.gid, plan.gid)
    os.setresuid(plan.uid, plan.uid, plan.uid)      # clears the permitted and effective sets
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    os.chdir("/")


class ConfineError(OSError):
    """The child could not confine itself (before QEMU was executed)."""


class MempolicyError(OSError):
    """The child could not set its NUMA memory policy (before QEMU was executed)."""


#: set_mempolicy(2): its number per machine, and the policies of libvirt's numatune modes
_SET_MEMPOLICY = {"x86_64": 238, "aarch64": 237, "ppc64le": 260, "s390x": 270}
_MPOL = {"preferred": 1, "strict": 2, "interleave": 3}


def mempolicy(policy: dict | None):
    """A call that sets the NUMA memory ``policy`` (``{"mode", "nodes"}``) of the calling process
    (made here, run in the child before exec: it is inherited), or None."""
    if not policy:
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    nodes = [int(n) for n in policy["nodes"]]
    bits = ctypes.sizeof(ctypes.c_ulong) * 8
    mask = (ctypes.c_ulong * (max(nodes) // bits + 1))()
    for n in nodes:
        mask[n // bits] |= 1 << (n % bits)
    number = _SET_MEMPOLICY.get(os.uname().machine)
    mode = _MPOL[policy["mode"]]

    def apply() -> None:
        if number is None:
            raise OSError(0, f"set_mempolicy: not known on {os.uname().machine}")
        if libc.syscall(number, mode, mask, len(mask) * bits + 1) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"set_mempolicy({policy['mode']}, nodes {nodes}): {os.strerror(err)}")
    return apply


def spawn(argv: list[str], env: dict, stdin: int, out: int, plan: Plan | None, mempolicy=None) -> int:
    """Fork and execute ``argv`` (inheritable fds stay open) in its own process group,
    confined by ``plan`` (None: as we are), with the NUMA memory policy ``mempolicy`` sets (a
    call from :func:`mempolicy`, or None).  Raises ConfineError if the confinement failed,
    OSError with the reason if the memory policy or the exec did."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:        # the child: no Python-level cleanup, ever
        stage = "confine"
        try:
            os.close(r)
            os.setpgid(0, 0)
            os.dup2(stdin, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            if plan is not None:
                enter(plan)
            if mempolicy is not None:
                stage = "mempolicy"
                mempolicy()
            stage = "exec"
            os.execvpe(argv[0], argv, env)
        except BaseException as exc:    # noqa: BLE001 - report anything to the parent
            try:
                why = getattr(exc, "strerror", None) or str(exc)
                os.write(w, f"{stage}:{getattr(exc, 'errno', 0) or 0}:{why}".encode(errors="replace")[:4000])
            finally:
                os._exit(127)
    os.close(w)
    try:
        msg = b""
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            msg += chunk
    finally:
        os.close(r)
    if msg:
        os.waitpid(pid, 0)
        stage, _, rest = msg.decode(errors="replace").partition(":")
        code, _, text = rest.partition(":")
        cls = {"confine": ConfineError, "mempolicy": MempolicyError}.get(stage, OSError)
        raise cls(int(code) if code.isdigit() else 0, text)
    return pid
