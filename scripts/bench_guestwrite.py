"""Bench section `guestfs`, the writes (issue 13): vsh's appliance vs libguestfs's.

Called by bench_guestfs.run() with the test images' manifest and libguestfs's environment
(None when libguestfs is unavailable):

* first write on a cold appliance: ``vsh -a IMG -i write /etc/motd …`` vs
  ``guestfish -a IMG -i write /etc/motd …`` (LIBGUESTFS_BACKEND=direct, force_tcg);
* per command in a session: 50 ``write`` commands in one vsh batch, minus one;
* ``vsh customize`` vs ``virt-customize`` with --hostname --root-password --ssh-inject --write.

Each figure is on a fresh sparse copy of the GPT ext4 Debian image.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench import VSH, ratio, report
from bench_guestfs import last_err, log, run_cmd

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHZzaGJlbmNoa2V5Zm9yY3VzdG9taXpl bench@vsh"
CUSTOMIZE = ["--hostname", "bench1", "--root-password", "password:benchpw", "--ssh-inject", f"root:string:{KEY}",
             "--write", "/etc/vsh-bench:hello"]


def _copy(src: str, tmp: Path, name: str) -> str:
    dest = str(tmp / name)
    subprocess.run(["cp", "--sparse=always", src, dest], check=True)
    return dest


def run(manifest: dict | None, tmp: Path, peer_env: dict | None) -> None:
    if manifest is None or "gpt" not in manifest["images"]:
        report("guestfs writes", "skipped: no test images (scripts/build-test-images)")
        return
    src = str(manifest["dir"] / manifest["images"]["gpt"]["file"])
    # first write, cold appliance
    img = _copy(src, tmp, "w-vsh.img")
    p, t_vsh = run_cmd([VSH, "--format", "raw", "-a", img, "-i", "write", "/etc/motd", "from vsh"])
    if p.returncode:
        report("vsh first write (cold appliance)", f"failed: {last_err(p)}")
        return
    t_peer = None
    if peer_env is not None and shutil.which("guestfish"):
        img = _copy(src, tmp, "w-gf.img")
        p, t_peer = run_cmd(["guestfish", "--format=raw", "-a", img, "-i", "write", "/etc/motd", "from guestfish"],
                            env=peer_env)
        if p.returncode:
            log(f"guestfish failed: {last_err(p)}")
            t_peer = None
    report("first write: vsh -a IMG -i write (cold appliance)",
           f"{t_vsh:.2f} s" + (f" vs guestfish {t_peer:.2f} s = {ratio(t_vsh, t_peer)}" if t_peer else ""))
    # per command in a session
    img = _copy(src, tmp, "w-batch.img")
    one = "write /etc/motd x\n"
    p1, t1 = run_cmd([VSH, "--format", "raw", "-a", img, "-i"], stdin=one.encode())
    p50, t50 = run_cmd([VSH, "--format", "raw", "-a", img, "-i"],
                       stdin="".join(f"write /etc/motd-{i} line{i}\n" for i in range(51)).encode())
    if p1.returncode or p50.returncode:
        report("write per command in a session", f"failed: {last_err(p50 if p50.returncode else p1)}")
    else:
        report("write per command in a session (51 vs 1 in a batch)", f"{(t50 - t1) / 50 * 1000:.1f} ms")
    # customize
    img = _copy(src, tmp, "c-vsh.img")
    p, t_vsh = run_cmd([VSH, "customize", "-a", img, "--format", "raw", "-q", *CUSTOMIZE])
    if p.returncode:
        report("vsh customize", f"failed: {last_err(p)}")
        return
    t_peer = None
    if peer_env is not None and shutil.which("virt-customize"):
        img = _copy(src, tmp, "c-vc.img")
        p, t_peer = run_cmd(["virt-customize", "--format=raw", "-a", img, "-q", *CUSTOMIZE], env=peer_env)
        if p.returncode:
            log(f"virt-customize failed: {last_err(p)}")
            t_peer = None
    report("customize --hostname --root-password --ssh-inject --write",
           f"{t_vsh:.2f} s" + (f" vs virt-customize {t_peer:.2f} s = {ratio(t_vsh, t_peer)}" if t_peer else ""))
