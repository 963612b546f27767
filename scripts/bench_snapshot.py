"""Bench section `snapshot` (issue 5 §3, §7): snapshots and save/restore.

Imported by scripts/bench.py, which calls run().

* offline snapshots: on one qcow2 image (1 GiB virtual, 64 MiB written) of a shut-off
  domain, `vsh snapshot-create-as` / `snapshot-revert` / `snapshot-delete` (and
  `--disk-only`) against `qemu-img snapshot -c/-a/-d` (and `qemu-img create -b`) on the
  same image. vsh's figure is the whole command (process start-up, lock, metadata).
* save / restore: the test guest (microvm, 256 MiB, booted to its shell) saved to a file
  and restored, `vsh save/restore` against libvirt 9.0's `virsh save/restore` (the peer of
  scripts/libvirt-peer), in alternating rounds; time until the command returns.
* live internal snapshots: the same guest with a qcow2 data disk, `snapshot-create-as`
  and `snapshot-revert` of the running guest, vsh against libvirt.

Environment knobs: VSH_BENCH_SNAPSHOT_RUNS (rounds, default 7).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench import VSH, ratio, report
from bench_start import (BOOT_TIMEOUT, QEMU, LibvirtPeer, _q, ensure_libvirt, kill_pid, log, pids_mentioning,
                         run_cmd, test_guest, vsh_kill_leftovers, wait_ready)

RUNS = int(os.environ.get("VSH_BENCH_SNAPSHOT_RUNS", "7"))

GUEST_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{qemu}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{data}'/>
      <target dev='vda' bus='virtio'/>
      <address type='virtio-mmio'/>
    </disk>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='{serial}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def med(xs):
    return statistics.median(xs) if xs else None


def ms(x) -> str:
    return "n/a" if x is None else f"{x * 1000:.0f} ms"


def timed_cmd(argv, env=None) -> float | None:
    p, dt = run_cmd(argv, env=env, timeout=300)
    if p.returncode != 0:
        log(f"{' '.join(map(str, argv[:3]))} ...: {(p.stderr or p.stdout).strip()[-300:]}")
        return None
    return dt


def guest_xml(name: str, guest: dict, data: Path, serial: Path) -> str:
    return GUEST_XML.format(name=name, kernel=_q(guest["vmlinux"]), initrd=_q(guest["initrd"]),
                            cmdline=_q(guest["cmdline_full"] + " no_timer_check"), qemu=_q(QEMU),
                            data=_q(str(data)), serial=_q(str(serial)))


# -- offline snapshots vs qemu-img ---------------------------------------------------------------------


def offline(tmp: Path) -> None:
    img = tmp / "off.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "1G"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64M", str(img)], check=True,
                   stdout=subprocess.DEVNULL)
    store = tmp / "store-off"
    env = dict(os.environ, VSH_DEFAULT_URI=f"vsh:///session?root={store}")
    xml = tmp / "off.xml"
    xml.write_text(f"""<domain type='qemu'><name>off</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64' machine='microvm'>hvm</type><kernel>/nonexistent</kernel></os>
<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{img}'/>
<target dev='vda' bus='virtio'/></disk></devices></domain>""")
    run_cmd([VSH, "define", str(xml)], env=env, check=True)
    q_create, q_apply, q_delete, v_create, v_revert, v_delete = [], [], [], [], [], []
    run_cmd(["qemu-img", "snapshot", "-c", "base", str(img)], check=True)
    run_cmd([VSH, "snapshot-create-as", "off", "vbase"], env=env, check=True)
    for i in range(RUNS):
        for t, argv in ((q_create, ["qemu-img", "snapshot", "-c", f"q{i}", str(img)]),
                        (q_apply, ["qemu-img", "snapshot", "-a", "base", str(img)]),
                        (q_delete, ["qemu-img", "snapshot", "-d", f"q{i}", str(img)])):
            dt = timed_cmd(argv)
            if dt is not None:
                t.append(dt)
        for t, argv in ((v_create, [VSH, "snapshot-create-as", "off", f"v{i}"]),
                        (v_revert, [VSH, "snapshot-revert", "off", "vbase"]),
                        (v_delete, [VSH, "snapshot-delete", "off", f"v{i}"])):
            dt = timed_cmd(argv, env=env)
            if dt is not None:
                t.append(dt)
    report("offline internal create: qemu-img snapshot -c", ms(med(q_create)))
    report("offline internal create: vsh snapshot-create-as", f"{ms(med(v_create))} "
           f"({ratio(med(v_create) or 0, med(q_create) or 0)})")
    report("offline revert: qemu-img snapshot -a", ms(med(q_apply)))
    report("offline revert: vsh snapshot-revert", f"{ms(med(v_revert))} ({ratio(med(v_revert) or 0, med(q_apply) or 0)})")
    report("offline delete: qemu-img snapshot -d", ms(med(q_delete)))
    report("offline delete: vsh snapshot-delete", f"{ms(med(v_delete))} ({ratio(med(v_delete) or 0, med(q_delete) or 0)})")
    # external (disk-only) vs qemu-img create -b
    q_ext, v_ext, v_ext_del = [], [], []
    for i in range(RUNS):
        ov = tmp / f"q-ov{i}.qcow2"
        dt = timed_cmd(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(img), "-F", "qcow2", str(ov)])
        if dt is not None:
            q_ext.append(dt)
        ov.unlink(missing_ok=True)
        dt = timed_cmd([VSH, "snapshot-create-as", "off", f"x{i}", "--disk-only"], env=env)
        if dt is not None:
            v_ext.append(dt)
        dt = timed_cmd([VSH, "snapshot-revert", "off", "vbase", "--force"], env=env)
        dt = timed_cmd([VSH, "snapshot-delete", "off", f"x{i}"], env=env)
        if dt is not None:
            v_ext_del.append(dt)
    report("offline disk-only create: qemu-img create -b ... -F qcow2", ms(med(q_ext)))
    report("offline disk-only create: vsh snapshot-create-as --disk-only",
           f"{ms(med(v_ext))} ({ratio(med(v_ext) or 0, med(q_ext) or 0)})")
    t = timed_cmd([VSH, "list", "--all"], env=env)
    report("(vsh single-shot floor: vsh list --all)", ms(t))


# -- the running guest: save/restore and live snapshots, vsh vs libvirt ----------------------------------


class VshSide:
    def __init__(self, tmp: Path, guest: dict):
        self.name = "bsv"
        self.store = tmp / "store-live"
        self.env = dict(os.environ, VSH_DEFAULT_URI=f"vsh:///session?root={self.store}")
        self.serial = tmp / "bsv.serial.log"
        self.data = tmp / "bsv.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.data), "32M"], check=True)
        xml = tmp / "bsv.xml"
        xml.write_text(guest_xml(self.name, guest, self.data, self.serial))
        run_cmd([VSH, "define", str(xml)], env=self.env, check=True)

    def cmd(self, *args):
        return timed_cmd([VSH, *args], env=self.env)

    def ready_paths(self):
        return [self.serial, self.store / "run" / self.name / "console.log"]


class LibvirtSide:
    def __init__(self, tmp: Path, guest: dict, peer: LibvirtPeer):
        self.name = "blv"
        self.peer = peer
        self.serial = tmp / "blv.serial.log"
        self.data = tmp / "blv.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.data), "32M"], check=True)
        xml = tmp / "blv.xml"
        xml.write_text(guest_xml(self.name, guest, self.data, self.serial))
        p, _ = peer.virsh("define", str(xml))
        if p.returncode != 0:
            raise RuntimeError(f"virsh define: {p.stderr.strip()}")

    def cmd(self, *args):
        p, dt = self.peer.virsh(*args, timeout=300)
        if p.returncode != 0:
            log(f"virsh {' '.join(args[:2])}: {(p.stderr or p.stdout).strip()[-300:]}")
            return None
        return dt

    def ready_paths(self):
        return [self.serial]


def boot(side, guest) -> bool:
    side.serial.unlink(missing_ok=True)
    t0 = time.perf_counter()
    if side.cmd("start", side.name) is None:
        return False
    if wait_ready(side.ready_paths(), guest["ready_line"].encode(), t0 + BOOT_TIMEOUT) is None:
        log(f"{side.name}: no ready line")
        return False
    time.sleep(1.0)    # let the guest settle (both sides alike)
    return True


def live(tmp: Path, guest: dict, peer) -> None:
    sides = [VshSide(tmp, guest)]
    if peer is not None:
        try:
            sides.append(LibvirtSide(tmp, guest, peer))
        except RuntimeError as exc:
            log(f"{exc}: libvirt figures skipped")
    figures = {s.name: {"save": [], "restore": [], "snap": [], "revert": [], "size": []} for s in sides}
    for side in sides:
        if not boot(side, guest):
            return
    for i in range(RUNS):
        for side in (sides if i % 2 == 0 else list(reversed(sides))):
            f = figures[side.name]
            target = tmp / f"{side.name}-{i}.save"
            dt = side.cmd("save", side.name, str(target))
            if dt is None:
                continue
            f["save"].append(dt)
            f["size"].append(target.stat().st_size)
            dt = side.cmd("restore", str(target))
            if dt is not None:
                f["restore"].append(dt)
            target.unlink(missing_ok=True)
    for i in range(RUNS):
        for side in (sides if i % 2 == 0 else list(reversed(sides))):
            f = figures[side.name]
            dt = side.cmd("snapshot-create-as", side.name, f"s{i}")
            if dt is not None:
                f["snap"].append(dt)
            args = ["snapshot-revert", side.name, f"s{i}"] + (["--force"] if isinstance(side, VshSide) else [])
            dt = side.cmd(*args)
            if dt is not None:
                f["revert"].append(dt)
    v = figures["bsv"]
    lv = figures.get("blv")
    size = med(v["size"])
    report("save image size (vsh)", f"{size / 2**20:.1f} MiB" if size else "n/a")
    if lv and lv["size"]:
        report("save image size (libvirt)", f"{med(lv['size']) / 2**20:.1f} MiB")
    for key, label in (("save", "save (command returns, guest stopped)"),
                       ("restore", "restore (command returns, guest running)"),
                       ("snap", "live internal snapshot-create-as (memory + disk)"),
                       ("revert", "live snapshot-revert to it (running)")):
        report(f"vsh {label}", ms(med(v[key])))
        if lv:
            report(f"libvirt {label}", ms(med(lv[key])))
            goal = " (goal <= 1.0x)" if key in ("save", "restore") else ""
            report(f"ratio {key} vsh/libvirt{goal}", ratio(med(v[key]) or 0, med(lv[key]) or 0))


def run() -> None:
    print("== snapshot: snapshots vs qemu-img, save/restore and live snapshots vs libvirt (issue 5)", flush=True)
    if not (shutil.which("qemu-img") and shutil.which("qemu-io")):
        report("snapshot section", "skipped: qemu-img/qemu-io not installed")
        return
    tmp = Path(tempfile.mkdtemp(prefix="vsh-bench-snap-"))
    peer = None
    try:
        offline(tmp)
        guest = test_guest() if Path(QEMU).exists() else None
        if guest is None:
            report("save/restore section", "skipped: no QEMU or no test guest")
            return
        if os.geteuid() == 0 and ensure_libvirt():
            peer = LibvirtPeer(tmp / "libvirt")
            if not peer.start():
                peer = None
            else:
                peer.virsh("capabilities", timeout=300)
        else:
            log("no libvirt peer (needs root and the libvirt packages): libvirt figures skipped")
        live(tmp, guest, peer)
    finally:
        if peer is not None:
            peer.stop()
        store = tmp / "store-live"
        vsh_kill_leftovers(store, dict(os.environ, VSH_DEFAULT_URI=f"vsh:///session?root={store}"))
        for pid in pids_mentioning(str(tmp)):
            kill_pid(pid)
        shutil.rmtree(tmp, ignore_errors=True)
