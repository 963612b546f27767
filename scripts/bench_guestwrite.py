"""Bench section `guestfs`, the writes (issue 13): vsh's appliance vs libguestfs's.

Called by bench_guestfs.run() with the test images' manifest and libguestfs's environment
(None when libguestfs is unavailable):

* first write on a cold appliance: ``vsh -a IMG -i write /etc/motd …`` vs
  ``guestfish -a IMG -i write /etc/motd …`` (LIBGUESTFS_BACKEND=direct, force_tcg); vsh's
  appliance is restored from its saved state (made by any earlier start); the same write
  once more without that state (the first start after an appliance build: it boots and
  saves);
* per command in a session: 50 ``write`` calls after the first one (which boots the appliance);
* ``vsh customize`` vs ``virt-customize`` with --hostname --root-password --ssh-inject --write.

Each figure is on a fresh sparse copy of the GPT ext4 Debian image, its /etc/fstab first
cleared of the line the test image carries on purpose (libguestfs's inspection stops at it:
"augeas parse failure"), with vsh's own ``guest-edit -e``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import ROOT, VSH, ratio, report
from bench_guestfs import last_err, log, run_cmd

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHZzaGJlbmNoa2V5Zm9yY3VzdG9taXpl bench@vsh"
CUSTOMIZE = ["--hostname", "bench1", "--root-password", "password:benchpw", "--ssh-inject", f"root:string:{KEY}",
             "--write", "/etc/vsh-bench:hello"]


def _copy(src: str, tmp: Path, name: str) -> str:
    dest = str(tmp / name)
    subprocess.run(["cp", "--sparse=always", src, dest], check=True)
    return dest


def side_by_side(label: str, src: str, tmp: Path, vsh_args: list[str], peer: str, peer_args: list[str],
                 peer_env: dict | None) -> bool:
    """One vsh run and one peer run, each on a fresh copy of ``src`` (``IMG`` in the arguments)."""
    img = _copy(src, tmp, "vsh.img")
    p, t_vsh = run_cmd([VSH] + [img if a == "IMG" else a for a in vsh_args])
    if p.returncode:
        report(label, f"failed: {last_err(p)}")
        return False
    t_peer = None
    if peer_env is not None and shutil.which(peer):
        img = _copy(src, tmp, "peer.img")
        p, t_peer = run_cmd([peer] + [img if a == "IMG" else a for a in peer_args], env=peer_env)
        if p.returncode:
            log(f"{peer} failed: {last_err(p)}")
            t_peer = None
    report(label, f"{t_vsh:.2f} s" + (f" vs {peer} {t_peer:.2f} s = {ratio(t_vsh, t_peer)}" if t_peer else ""))
    return True


def run(manifest: dict | None, tmp: Path, peer_env: dict | None) -> None:
    if manifest is None or "gpt" not in manifest["images"]:
        report("guestfs writes", "skipped: no test images (scripts/build-test-images)")
        return
    src = _copy(str(manifest["dir"] / manifest["images"]["gpt"]["file"]), tmp, "clean.img")
    p, _t = run_cmd([VSH, "--format", "raw", "-a", src, "-i", "guest-edit", "-e",
                     "s/^this line is not a valid fstab entry$/# (removed for the bench)/", "/etc/fstab"])
    if p.returncode:
        report("guestfs writes", f"failed to prepare the image: {last_err(p)}")
        return
    if not side_by_side("first write: vsh -a IMG -i write (cold appliance)", src, tmp,
                        ["--format", "raw", "-a", "IMG", "-i", "write", "/etc/motd", "from vsh"], "guestfish",
                        ["--format=raw", "-a", "IMG", "-i", "write", "/etc/motd", "from guestfish"], peer_env):
        return
    sys.path.insert(0, str(ROOT))
    from vsh import api
    from vsh.guestfs.appliance import build

    for saved in Path(build.ensure()["initrd"]).parent.glob("state-*"):
        saved.unlink()
    p, t = run_cmd([VSH, "--format", "raw", "-a", _copy(src, tmp, "nostate.img"), "-i", "write", "/etc/motd", "x"])
    report("first write without a saved state (boots, then saves it)", f"failed: {last_err(p)}" if p.returncode
           else f"{t:.2f} s")
    # per command in a session: after the first write (the start), through the API

    img = _copy(src, tmp, "w-batch.img")
    conn = api.connect(f"vsh:///session?root={tmp}/store")
    g = conn.guest_disks(readonly=False)
    try:
        g.add_drive(img, "raw")
        g.launch()
        g.mount_inspected()
        g.write("/etc/motd", b"first")
        t0 = time.perf_counter()
        for i in range(50):
            g.write(f"/etc/motd-{i}", b"line %d\n" % i)
        per = (time.perf_counter() - t0) / 50
        report("write per command in a session (50 after the first)", f"{per * 1000:.1f} ms")
    finally:
        g.close()
        conn.close()
    side_by_side("customize --hostname --root-password --ssh-inject --write", src, tmp,
                 ["customize", "-a", "IMG", "--format", "raw", "-q", *CUSTOMIZE], "virt-customize",
                 ["--format=raw", "-a", "IMG", "-q", *CUSTOMIZE], peer_env)
