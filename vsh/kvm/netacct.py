"""Traffic counters and guest addresses of user-mode network interfaces.

QEMU keeps no traffic counters for a user-mode (slirp) netdev, and its built-in
DHCP server does not tell anyone which address it gave out.  What QEMU can do is
show the frames that pass through a netdev: the supervisor attaches a
``filter-dump`` object to every user-mode netdev (at start and on hot-plug) that
writes the first :data:`MAXLEN` bytes of each frame, with its real length, to
``RUNDIR/netacct-<mac>.pcap``.  :func:`read` consumes that file incrementally and
keeps, in ``netacct-<mac>.pcap.state``:

* the counters: frames and bytes sent by the guest (source MAC = the NIC's MAC) and
  received by it (everything else);
* the DHCP lease: the ``yiaddr`` of the last BOOTP reply QEMU's DHCP server sent to
  the NIC's MAC (so the guest must have asked for one: no DHCP, no lease);
* the addresses the guest itself used as the source of IPv4, ARP and IPv6 frames.

Everything counts from the start of the QEMU process (as libvirt's tap counters
do).  Consumed parts of the dump are freed (``fallocate`` punch hole), and the
supervisor sweeps the files every :data:`SWEEP_INTERVAL` seconds so they do not
grow while nobody asks.  ``netacct.json`` maps each MAC to its QEMU device id,
netdev and dump file.

Only the reader half (:func:`read`, :func:`load_map`) is used by vsh commands; it
needs neither lxml nor asyncio.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct

MAXLEN = 96
MAP_FILE = "netacct.json"
SWEEP_INTERVAL = 60.0
_CHUNK = 1 << 20
_BLOCK = 4096


def log(msg: str) -> None:
    """The supervisor's log (its stderr)."""
    from vsh.kvm.supervisor.log import log as supervisor_log

    supervisor_log(msg)


def _key(mac: str) -> str:
    return (mac or "").lower()


def pcap_name(mac: str) -> str:
    return "netacct-" + _key(mac).replace(":", "") + ".pcap"


def filter_id(netdev: str) -> str:
    return "vsh-netacct-" + netdev


def load_map(rundir) -> dict:
    try:
        with open(os.path.join(os.fspath(rundir), MAP_FILE), "rb") as fh:
            data = json.loads(fh.read() or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# -- supervisor side ----------------------------------------------------------------------------


def _write_map(sup, data: dict) -> None:
    from vsh.core.runtime import write_json_atomic

    write_json_atomic(sup.rundir / MAP_FILE, data)


async def setup(sup) -> None:
    """Attach a dump filter to every user-mode netdev of a (just started or re-attached) QEMU."""
    from vsh.kvm.qemudevs import network_clients

    for c in await network_clients(sup):
        if c.get("netdev_type") == "user" and c.get("mac") and c.get("netdev"):
            await add_filter(sup, c["netdev"], c["mac"], c["id"])
    if not getattr(sup, "_netacct_sweeper", None):
        sup._netacct_sweeper = sup._spawn_task(_sweeper(sup))


async def add_filter(sup, netdev: str, mac: str, dev_id: str) -> None:
    from vsh.core.errors import VshError

    identity = [sup.qemu_pid, sup.qemu_starttime]
    data = load_map(sup.rundir)
    known = data.get(_key(mac))
    try:
        await sup._exec("object-add", {"qom-type": "filter-dump", "id": filter_id(netdev), "netdev": netdev,
                                       "file": str(sup.rundir / pcap_name(mac)), "maxlen": MAXLEN})
    except VshError as exc:
        if not (known and known.get("qemu") == identity and known.get("netdev") == netdev):
            log(f"traffic accounting for {dev_id} ({mac}) is not available: " + " | ".join(exc.lines))
            return
    data[_key(mac)] = {"id": dev_id, "netdev": netdev, "file": pcap_name(mac), "qemu": identity}
    _write_map(sup, data)


async def remove_filter(sup, netdev: str, mac: str | None) -> None:
    from vsh.core.errors import VshError

    try:
        await sup._exec("object-del", {"id": filter_id(netdev)})
    except VshError:
        pass
    if not mac:
        return
    data = load_map(sup.rundir)
    entry = data.pop(_key(mac), None)
    _write_map(sup, data)
    if entry:
        for suffix in ("", ".state", ".lock"):
            try:
                os.unlink(sup.rundir / (entry["file"] + suffix))
            except OSError:
                pass


async def _sweeper(sup) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        for mac in list(load_map(sup.rundir)):
            try:
                await loop.run_in_executor(None, read, str(sup.rundir), mac)
            except Exception as exc:  # noqa: BLE001 - housekeeping must not stop the supervisor
                log(f"netacct sweep {mac}: {exc}")


# -- reader side ----------------------------------------------------------------------------------


def _fresh(identity) -> dict:
    return {"qemu": identity, "offset": 24, "punched": 0, "endian": None,
            "rx_bytes": 0, "rx_packets": 0, "tx_bytes": 0, "tx_packets": 0, "lease": None, "seen": []}


def _punch(fd: int, start: int, end: int) -> bool:
    """Free the blocks of [start, end) of a file (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)."""
    if end <= start:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
        return libc.fallocate(fd, 3, start, end - start) == 0
    except (OSError, AttributeError):
        return False


def _ip4(b: bytes) -> str:
    return ".".join(str(x) for x in b)


def _ip6(b: bytes) -> str:
    import ipaddress

    return str(ipaddress.IPv6Address(b))


def analyse(state: dict, mac: bytes, ts: int, pkt: bytes, length: int) -> None:
    """Account one frame (its first bytes ``pkt``, real length ``length``) in ``state``."""
    if len(pkt) < 14:
        return
    tx = pkt[6:12] == mac
    if tx:
        state["tx_packets"] += 1
        state["tx_bytes"] += length
    else:
        state["rx_packets"] += 1
        state["rx_bytes"] += length
    etype = struct.unpack(">H", pkt[12:14])[0]
    off = 14
    if etype == 0x8100 and len(pkt) >= 18:
        etype = struct.unpack(">H", pkt[16:18])[0]
        off = 18
    seen = None
    if etype == 0x0800 and len(pkt) >= off + 20:
        ihl = (pkt[off] & 0x0F) * 4
        if tx:
            src = pkt[off + 12:off + 16]
            if src != b"\0\0\0\0" and src != b"\xff\xff\xff\xff":
                seen = (_ip4(src), "ipv4")
        elif pkt[off + 9] == 17 and len(pkt) >= off + ihl + 8 + 34:
            udp = off + ihl
            sport, dport = struct.unpack(">HH", pkt[udp:udp + 4])
            bootp = udp + 8
            if sport == 67 and dport == 68 and pkt[bootp] == 2 and pkt[bootp + 28:bootp + 34] == mac:
                yiaddr = pkt[bootp + 16:bootp + 20]
                if yiaddr != b"\0\0\0\0":
                    state["lease"] = {"address": _ip4(yiaddr), "time": ts}
    elif etype == 0x0806 and tx and len(pkt) >= off + 18:
        spa = pkt[off + 14:off + 18]
        if spa != b"\0\0\0\0":
            seen = (_ip4(spa), "ipv4")
    elif etype == 0x86DD and tx and len(pkt) >= off + 24:
        src = pkt[off + 8:off + 24]
        if src != bytes(16):
            seen = (_ip6(src), "ipv6")
    if seen is not None:
        rest = [s for s in state["seen"] if s[0] != seen[0]]
        rest.append([seen[0], seen[1], ts])
        state["seen"] = rest[-16:]


def read(rundir, mac: str) -> dict | None:
    """The counters and addresses of the user-mode NIC ``mac`` (None if it is not accounted)."""
    rundir = os.fspath(rundir)
    entry = load_map(rundir).get(_key(mac))
    if not entry:
        return None
    path = os.path.join(rundir, entry["file"])
    identity = entry.get("qemu")
    lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            with open(path + ".state", "rb") as fh:
                state = json.loads(fh.read())
        except (OSError, ValueError):
            state = None
        if not isinstance(state, dict) or state.get("qemu") != identity:
            state = _fresh(identity)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return dict(state, id=entry.get("id"), netdev=entry.get("netdev"))
        try:
            changed = _consume(fd, state, bytes.fromhex(_key(mac).replace(":", "")))
            if changed:
                _save(path + ".state", state)
            edge = (state["offset"] // _BLOCK) * _BLOCK
            if edge > state["punched"] and _punch(fd, state["punched"], edge):
                state["punched"] = edge
                _save(path + ".state", state)
        finally:
            os.close(fd)
        return dict(state, id=entry.get("id"), netdev=entry.get("netdev"))
    finally:
        os.close(lock_fd)


def _consume(fd: int, state: dict, mac: bytes) -> bool:
    if state["endian"] is None:
        head = os.pread(fd, 24, 0)
        if len(head) < 24:
            return False
        magic = head[:4]
        if magic == b"\xd4\xc3\xb2\xa1":
            state["endian"] = "<"
        elif magic == b"\xa1\xb2\xc3\xd4":
            state["endian"] = ">"
        else:
            # not a dump this reader started (its head is gone): count from the end
            state["endian"] = "<"
            state["offset"] = os.fstat(fd).st_size
            return True
    fmt = state["endian"] + "IIII"
    start = base = state["offset"]
    buf = b""
    pos = 0
    while True:
        need = 16
        if len(buf) - pos >= 16:
            ts, _us, incl, orig = struct.unpack_from(fmt, buf, pos)
            if incl > 65535:
                break       # not a record boundary: stop rather than count garbage
            need = 16 + incl
            if len(buf) - pos >= need:
                analyse(state, mac, ts, buf[pos + 16:pos + need], orig)
                pos += need
                continue
        more = os.pread(fd, max(_CHUNK, need), base + len(buf))
        if not more:
            break
        buf = buf[pos:] + more
        base += pos
        pos = 0
    state["offset"] = base + pos
    return state["offset"] != start


def _save(path: str, state: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(state).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


__all__ = ["MAXLEN", "read", "load_map", "setup", "add_filter", "remove_filter", "analyse", "pcap_name"]
