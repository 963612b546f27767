"""The appliance's agent: PID 1's child inside the appliance VM (Python's standard library only).

It serves one request at a time on the virtio-serial port named :data:`PORT_NAME`. A frame
is an 8-byte header (two big-endian u32: the JSON length and the payload length), a JSON
object and the payload bytes. A request is ``{"op": NAME, ...arguments}``; the answer is
``{"ok": true, "result": ...}`` or ``{"ok": false, "errno": N|null, "error": TEXT}``, with
file contents in the payload. The host side imports :func:`send` and :func:`recv` from here,
so both ends share one definition of the frame.

Guest paths are resolved inside the guest: every file operation runs with the agent's root
directory changed to ``/sysroot`` (where the guest's filesystems are mounted), so an
absolute symbolic link, ``..`` or a host path in the guest lands inside the guest's tree.
The agent returns to the appliance's own root (an open directory descriptor) afterwards.
Devices are named as on the host side (``/dev/sda1``, the order the drives were added);
the agent maps them to the SCSI disks by their serial numbers (``vsh-d0``, ``vsh-d1`` ...).

The appliance boots without the user's disks and may be saved (its memory, by QEMU) and
restored many times: the host hot-adds the disks and sends ``attach``, which sets the
clock, reseeds the kernel's random number generator and waits for the disks. ``settle``
prepares a save (loads the modules the host names, zeroes free memory so the saved state
is small).
"""

import json
import os
import struct
import time

# Everything the file operations use is imported before the agent ever changes its root
# directory: inside the guest's tree, Python's library is the guest's (or missing).
if __name__ == "__main__":
    import bz2  # noqa: F401  (tarfile's decompressors)
    import ctypes  # noqa: F401
    import fcntl  # noqa: F401
    import gzip  # noqa: F401
    import lzma  # noqa: F401
    import mmap  # noqa: F401
    import shutil  # noqa: F401
    import subprocess  # noqa: F401
    import sys
    import tarfile  # noqa: F401

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))     # fileops.py is beside it
    import fileops
else:
    from vsh.guestfs.appliance import fileops

PORT_NAME = "org.vsh.appliance.0"
HEADER = struct.Struct(">II")
MAX_FRAME = 1 << 30
SYSROOT = "/sysroot"
FS_MODULES = {"ntfs": "fuse"}      # NTFS is mounted by ntfs-3g (mount.ntfs), in FUSE here
RNDADDENTROPY = 0x40085203         # _IOW('R', 0x03, int[2])
RNDRESEEDCRNG = 0x5207             # _IO('R', 0x07)
BLKRRPART = 0x125F
KERNEL_FS = ("ext2", "ext3", "ext4", "xfs", "vfat", "btrfs", "exfat")  # mounted with mount(2) when plain


def _read_exact(f, n: int) -> bytes:
    parts = []
    while n:
        chunk = f.read(n)
        if not chunk:
            raise EOFError("the channel closed")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def send(f, obj: dict, payload: bytes = b"") -> None:
    """Write one frame (the JSON object ``obj`` and ``payload``) to the binary file ``f``."""
    data = json.dumps(obj).encode()
    for part in (HEADER.pack(len(data), len(payload)) + data, payload):
        view = memoryview(part)
        while view:                 # a raw socket or port may take part of a large write
            view = view[f.write(view) or 0:]
    f.flush()


def recv(f) -> tuple[dict, bytes]:
    """Read one frame from the binary file ``f``: (object, payload)."""
    jlen, plen = HEADER.unpack(_read_exact(f, HEADER.size))
    if jlen > MAX_FRAME or plen > MAX_FRAME:
        raise ValueError("frame too large")
    return json.loads(_read_exact(f, jlen)), _read_exact(f, plen) if plen else b""


# --- inside the appliance ------------------------------------------------------------------


class Agent:
    def __init__(self):
        self.real_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        self.disks = {}
        self.mounts = []          # [(guest mountpoint, appliance path)], in mount order
        self.net_up = False
        self.stage = {}

    # devices

    def scan_disks(self):
        self.disks = {}
        for name in sorted(os.listdir("/sys/block")):
            serial = _serial(name)
            if serial.startswith("vsh-d") and serial[5:].isdigit():
                self.disks["sd" + _letters(int(serial[5:]))] = name

    def op_attach(self, req, data):
        """After a (re)start: the host's time and randomness, then the ``count`` disks the
        host hot-added (partition tables read) within ``wait`` seconds."""
        time.clock_settime_ns(time.CLOCK_REALTIME, req["clock_ns"])
        reseed(data)
        deadline = time.monotonic() + req.get("wait", 30)
        while True:
            self.scan_disks()
            if len(self.disks) >= req["count"]:
                break
            if time.monotonic() > deadline:
                raise OSError(110, f"{req['count'] - len(self.disks)} of the {req['count']} disks did not appear "
                                   f"within {req.get('wait', 30)} s")
            time.sleep(0.005)
        for name in self.disks.values():
            _reread_partitions("/dev/" + name)
        return {"disks": self.disks}, b""

    def op_settle(self, req, data):
        """Before the host saves this VM: every module loaded (no session loads one again),
        caches dropped and the free memory zeroed (zero pages take no room in the state)."""
        import mmap

        for name in req.get("modules", []):
            load_module(name)
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
        held = []                   # the kernel clears each page it hands out; freed, they stay zero
        while _mem_free() > (64 << 20):     # not below: the DMA zone and the watermarks are in it
            held.append(mmap.mmap(-1, 8 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE))
        for m in held:
            m.close()
        return None, b""

    def dev(self, name: str) -> str:
        if not name.startswith("/dev/"):
            raise OSError(2, f"{name}: not a device name")
        base = name[5:]
        head = base.rstrip("0123456789")
        if head in self.disks:
            return "/dev/" + self.disks[head] + base[len(head):]
        if os.path.exists(name):
            return name
        self.activate_lvm()
        if os.path.exists(name):
            return name
        raise OSError(2, f"{name}: no such device")

    def activate_lvm(self):
        load_module("dm_mod")
        _tool(["lvm", "vgscan", "--mknodes"], 60)
        _tool(["lvm", "vgchange", "-ay", "--sysinit"], 60)
        _tool(["lvm", "vgscan", "--mknodes"], 60)

    # the guest root

    def enter(self):
        os.chroot(SYSROOT)
        os.chdir("/")

    def leave(self):
        os.fchdir(self.real_root)
        os.chroot(".")
        os.chdir("/")

    def in_guest(self, fn, *args):
        if not self.mounts or self.mounts[0][0] != "/":
            raise OSError(22, "no filesystem is mounted on /")
        self.enter()
        try:
            return fn(*args)
        finally:
            self.leave()

    def guest_dir(self, path: str) -> str:
        """The appliance path of the guest directory ``path`` (links resolved inside the guest)."""
        def resolve():
            os.chdir(path)
            return os.getcwd()
        inside = self.in_guest(resolve)
        return SYSROOT + ("" if inside == "/" else inside)

    # requests

    def op_ping(self, req, data):
        self.scan_disks()
        return {"disks": self.disks}, b""

    def op_mount(self, req, data):
        device = self.dev(req["device"])
        mp = req["mountpoint"]
        if mp == "/":
            if self.mounts:
                raise OSError(16, "/: a filesystem is already mounted on /")
            target = SYSROOT
        else:
            target = self.guest_dir(mp)
        kind = req.get("vfstype") or req.get("kind") or \
            _tool(["blkid", "-o", "value", "-s", "TYPE", device], 60)["stdout"].strip()
        if kind:
            load_module(FS_MODULES.get(kind, kind))
        if req.get("vfstype") or kind not in KERNEL_FS or req.get("options", "") not in ("", "ro") or \
                _libc("mount", device.encode(), target.encode(), kind.encode(), 1 if req.get("options") else 0, None):
            argv = ["mount"] + (["-o", req["options"]] if req.get("options") else []) + \
                (["-t", req["vfstype"]] if req.get("vfstype") else []) + [device, target]
            _check(argv, 120)       # mount(8): helpers, options, a read-only disk, its error messages
        self.mounts.append((mp, target))
        return None, b""

    def op_umount_all(self, req, data):
        os.sync()
        while self.mounts:
            if _libc("umount", self.mounts[-1][1].encode()):
                _check(["umount", self.mounts[-1][1]], 120)
            self.mounts.pop()
        self.flush()
        return None, b""

    def op_tool(self, req, data):
        argv = list(req["argv"])
        for i in req.get("devices", []):
            argv[i] = self.dev(argv[i])
        for i in req.get("mountpoints", []):        # a guest mountpoint → where it is mounted here
            target = dict(self.mounts).get(argv[i].rstrip("/") or "/")
            if target is None:
                raise OSError(22, f"{argv[i]}: nothing is mounted there")
            argv[i] = target
        if argv[0] == "lvm":
            load_module("dm_mod")
        r = _tool(argv, req.get("timeout", 600), data)
        if req.get("rereadpt"):
            _tool(["blockdev", "--rereadpt", argv[req["devices"][0]]], 60)
        return r, b""

    def op_luks_open(self, req, data):
        """Unlock a LUKS device as /dev/mapper/NAME with the key in the payload (never on a
        command line)."""
        if os.path.exists("/dev/mapper/" + req["name"]):
            return None, b""
        device = self.dev(req["device"])
        for m in ("dm_mod", "dm_crypt", "ecb", "xts", "essiv", "aesni_intel", "af_alg", "algif_skcipher"):
            load_module(m)
        r = _tool(["cryptsetup", "open", "--type", "luks", "--key-file=-", device, req["name"]], 300, data)
        if r["status"]:
            raise OSError(None, (r["stderr"] or r["stdout"]).strip() or "cryptsetup failed")
        return None, b""

    def op_sync(self, req, data):
        self.flush()
        return None, b""

    def flush(self):
        """sync, then fsync every disk: only an fsync of the block device sends the disk a
        flush (QEMU writes its qcow2 metadata then), which tools writing devices directly
        (lvm's O_DIRECT writes) do not always do."""
        os.sync()
        for name in self.disks.values():
            try:
                fd = os.open("/dev/" + name, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            except OSError:
                pass            # a read-only disk
            finally:
                os.close(fd)

    def op_fs(self, req, data):
        fn = fileops.FS_OPS[req["call"]]
        return self.in_guest(fn, req, data)

    def op_stage(self, req, data):
        mode = "ab" if req.get("offset") else "wb"
        with open("/tmp/stage", mode) as f:
            f.write(data)
        return None, b""

    def op_tar_in(self, req, data):
        """Unpack the staged tar file (any compression) into a guest directory, numeric owners."""
        src = open("/tmp/stage", "rb")
        try:
            return self.in_guest(fileops.untar, src, req["directory"])
        finally:
            src.close()
            os.unlink("/tmp/stage")

    def op_sh(self, req, data):
        import subprocess

        binds = []
        resolv = self.guest_resolv() if req.get("network") else None
        for d in ("proc", "sys", "dev"):
            target = SYSROOT + "/" + d
            if os.path.isdir(target) and not os.path.islink(target):
                _check(["mount", "--rbind", "/" + d, target], 30)
                binds.append(target)
        try:
            r = subprocess.run(["/bin/sh", "-c", req["command"]], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=req.get("limit", 600),
                               preexec_fn=lambda: (os.chroot(SYSROOT), os.chdir("/")),
                               env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C"})
            return {"status": r.returncode, "output": r.stdout.decode("utf-8", "replace")}, b""
        finally:
            for target in reversed(binds):
                _tool(["umount", "-l", target], 30)
            if resolv is not None:
                resolv()

    def guest_resolv(self):
        """Point the guest's /etc/resolv.conf at QEMU's DNS while a command runs (the guest's
        own file, or link, is put back by the function returned)."""
        if not self.net_up:
            load_module("virtio_net")
            if not os.path.isdir("/sys/class/net/eth0"):
                raise OSError(101, "the appliance has no network device")
            for argv in (["ip", "link", "set", "lo", "up"], ["ip", "link", "set", "eth0", "up"],
                         ["ip", "addr", "add", "10.0.2.15/24", "dev", "eth0"],
                         ["ip", "route", "add", "default", "via", "10.0.2.2"]):
                _check(["busybox"] + argv, 30)
            self.net_up = True
        etc = SYSROOT + "/etc"
        path, saved = etc + "/resolv.conf", etc + "/.resolv.conf.vsh-saved"
        had = os.path.lexists(path)
        if had:
            os.rename(path, saved)
        with open(path, "w") as f:
            f.write("nameserver 10.0.2.3\n")

        def restore():
            os.unlink(path)
            if had:
                os.rename(saved, path)
        return restore


def load_module(name: str) -> None:
    """Load a kernel module of the appliance and what it depends on (modules.dep, written by
    the builder); unknown names and modules already loaded are no error (and cost no process)."""
    top = "/usr/lib/modules/" + os.uname().release
    deps = {}
    with open(top + "/modules.dep") as f:
        for line in f:
            path, _, rest = line.partition(":")
            deps[path] = rest.split()
    by_name = {os.path.basename(p).split(".ko")[0].replace("-", "_"): p for p in deps}

    def load(path, seen):
        if path in seen or os.path.isdir("/sys/module/" + os.path.basename(path).split(".ko")[0].replace("-", "_")):
            return          # loaded already (each insmod is a process: ~0.1 s under TCG)
        seen.add(path)
        for d in deps.get(path, []):
            load(d, seen)
        _tool(["insmod", top + "/" + path], 60)

    path = by_name.get(name.replace("-", "_"))
    if path:
        load(path, set())


def _libc(name: str, *args) -> int:
    """Call the C library's ``name`` (mount, umount): 0, or an errno. A plain mount of a
    kernel filesystem this way saves a process whose code TCG has to translate afresh after
    every restore (≈ 0.2 s); anything else, and any failure, goes to mount(8)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return 0 if getattr(libc, name)(*args) == 0 else ctypes.get_errno() or -1


def _mem_free() -> int:
    with open("/proc/meminfo") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("MemFree:")) << 10


def reseed(seed: bytes) -> None:
    """Mix ``seed`` (fresh host randomness) into the kernel's pool and reseed its CRNG now:
    two appliances restored from one saved state must not draw the same numbers."""
    import fcntl

    if not seed:
        return
    fd = os.open("/dev/urandom", os.O_WRONLY)
    try:
        fcntl.ioctl(fd, RNDADDENTROPY, struct.pack("ii", len(seed) * 8, len(seed)) + seed)
        fcntl.ioctl(fd, RNDRESEEDCRNG)
    finally:
        os.close(fd)


def _serial(name: str) -> str:
    """A SCSI disk's serial number (VPD page 0x80: 4 header bytes, then the text)."""
    try:
        with open(f"/sys/block/{name}/device/vpd_pg80", "rb") as f:
            page = f.read()
    except OSError:
        return ""
    return page[4:4 + int.from_bytes(page[2:4], "big")].decode("ascii", "replace").strip()


def _reread_partitions(path: str) -> None:
    """Read the partition table now (a hot-added disk's may still be being read)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.ioctl(fd, BLKRRPART)
    except OSError:
        pass
    finally:
        os.close(fd)


def _letters(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(97 + r) + s
    return s


def _tool(argv, timeout, data=b""):
    import subprocess

    try:
        r = subprocess.run(argv, input=data or None, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env={"PATH": "/usr/sbin:/usr/bin", "LANG": "C"})
    except FileNotFoundError:
        return {"status": 127, "stdout": "", "stderr": f"{argv[0]}: command not found"}
    except subprocess.TimeoutExpired:
        return {"status": 124, "stdout": "", "stderr": f"{argv[0]}: timed out after {timeout} s"}
    return {"status": r.returncode, "stdout": r.stdout.decode("utf-8", "replace"),
            "stderr": r.stderr.decode("utf-8", "replace")}


def _check(argv, timeout):
    r = _tool(argv, timeout)
    if r["status"]:
        raise OSError(None, (r["stderr"] or r["stdout"]).strip() or f"{argv[0]} failed")
    return r


def main():
    agent = Agent()
    port = None
    for v in sorted(os.listdir("/sys/class/virtio-ports")):
        with open(f"/sys/class/virtio-ports/{v}/name") as f:
            if f.read().strip() == PORT_NAME:
                port = "/dev/" + v
    rf = wf = open(port, "r+b", buffering=0)
    send(wf, {"ready": True})
    while True:
        try:
            req, data = recv(rf)
        except EOFError:
            continue
        try:
            if req.get("op") == "quit":
                agent.op_umount_all(req, data)
                send(wf, {"ok": True, "result": None})
                break
            result, payload = getattr(agent, "op_" + req["op"])(req, data)
            send(wf, {"ok": True, "result": result}, payload)
        except OSError as e:
            send(wf, {"ok": False, "errno": e.errno, "error": e.strerror or str(e),
                      "filename": e.filename if isinstance(e.filename, str) else None})
        except Exception as e:
            send(wf, {"ok": False, "errno": None, "error": f"{type(e).__name__}: {e}"})
    with open("/proc/sysrq-trigger", "w") as f:
        f.write("o")


if __name__ == "__main__":
    main()
