"""Bench section `guestfs` (issue 4 §5): vsh's in-process guest-disk reads vs libguestfs.

Imported by scripts/bench.py, which calls run().

* virt-inspector -a IMG  vs  vsh inspect IMG (--json), answers compared
  (hostname, distro, version, product name, mountpoints, number of packages);
* virt-cat -a IMG /etc/hostname  vs  vsh -a IMG -i cat /etc/hostname;
* download of a 1 GiB file from a raw ext4 image through vsh vs reading the same bytes
  straight from the image with dd (the file's extents, found with debugfs);
* the writes (scripts/bench_guestwrite.py): first write, per command, customize.

libguestfs runs with LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg (the
only way it runs here).  Debian's libguestfs needs a kernel for its supermin appliance;
this machine has none in /boot, so a Debian linux-image package is downloaded with
apt-get and unpacked (never installed) into <cache>/libguestfs-kernel/<version>/ and handed
to supermin through SUPERMIN_KERNEL / SUPERMIN_MODULES / SUPERMIN_KERNEL_VERSION.

Environment knobs: VSH_BENCH_GUESTFS_IMAGES (manifest keys, default "gpt,lvm"),
VSH_BENCH_PEER_RUNS (libguestfs runs per command, default 3; 0 skips libguestfs).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from bench import ROOT, VSH, ratio, report, timed  # noqa: F401

PEER_RUNS = int(os.environ.get("VSH_BENCH_PEER_RUNS", "3"))
VSH_RUNS = 10
IMAGES = [x for x in os.environ.get("VSH_BENCH_GUESTFS_IMAGES", "gpt,lvm").split(",") if x]
APT = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
CACHE = Path(os.environ.get("VSH_CACHE_DIR")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vsh")
GIB = 1 << 30


def log(msg: str) -> None:
    print(f"    ({msg})", flush=True)


def run_cmd(argv, env=None, timeout=600, stdin=None):
    t0 = time.perf_counter()
    p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=timeout)
    return p, time.perf_counter() - t0


def text(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


def last_err(p) -> str:
    """The last line the command printed (stderr first), for a one-line failure report."""
    lines = text(p.stderr or p.stdout or b"").strip().splitlines()
    errors = [ln for ln in lines if "error:" in ln.lower()]
    return (errors or lines or [f"exit status {p.returncode}"])[-1].strip()[:200]


# --------------------------------------------------------------------------------------------
# libguestfs peer set-up

def ensure_libguestfs() -> bool:
    if shutil.which("virt-inspector") and shutil.which("virt-cat"):
        return True
    log("installing libguestfs-tools (large; once)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    argv = APT + ["install", "-y", "--no-install-recommends", "libguestfs-tools"]
    p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        subprocess.run(APT + ["update", "-qq"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        log(f"apt-get install libguestfs-tools failed: {p.stderr.strip()[-300:]}")
    return bool(shutil.which("virt-inspector") and shutil.which("virt-cat"))


def supermin_kernel_env() -> dict | None:
    """SUPERMIN_* variables for a kernel unpacked from Debian's package, or {} if /boot has one."""
    if os.environ.get("SUPERMIN_KERNEL") or glob.glob("/boot/vmlinuz-*"):
        return {}
    p = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    m = re.search(r"Depends:\s*(linux-image-(\S+))", p.stdout)
    have = sorted(glob.glob(str(CACHE / "libguestfs-kernel" / "*" / "boot" / "vmlinuz-*")))
    if m:
        pkg, kver = m.group(1), m.group(2)
        top = CACHE / "libguestfs-kernel" / kver
    elif have:
        top = Path(have[-1]).parent.parent
        kver = Path(have[-1]).name[len("vmlinuz-"):]
        pkg = None
    else:
        log("cannot find a Debian kernel package for libguestfs's appliance")
        return None
    if not (top / "boot" / f"vmlinuz-{kver}").exists():
        log(f"unpacking {pkg} for libguestfs's appliance into {top} (not installed)")
        top.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".kernel-", dir=top.parent))
        try:
            dl = work / "dl"
            dl.mkdir()
            os.chmod(work, 0o755)
            os.chmod(dl, 0o777)  # apt's _apt user downloads into it
            r = subprocess.run(APT + ["download", pkg], cwd=dl, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
            debs = list(dl.glob("*.deb"))
            if r.returncode != 0 or len(debs) != 1:
                log(f"apt-get download {pkg} failed: {r.stderr.strip()[-200:]}")
                return None
            tree = work / "tree"
            subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(tree)], check=True)
            subprocess.run(["depmod", "-b", str(tree), kver], check=True)
            try:
                tree.rename(top)
            except OSError:
                if not (top / "boot" / f"vmlinuz-{kver}").exists():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    # supermin copies the host's /lib/modules directory entry into the appliance; a host
    # without any kernel installed has none.  An empty directory is enough.
    if not os.path.isdir("/lib/modules"):
        os.makedirs("/lib/modules", exist_ok=True)
    return {"SUPERMIN_KERNEL": str(top / "boot" / f"vmlinuz-{kver}"),
            "SUPERMIN_MODULES": str(top / "lib" / "modules" / kver),
            "SUPERMIN_KERNEL_VERSION": kver}


def test_images() -> dict | None:
    script = ROOT / "scripts" / "build-test-images"
    if not script.exists():
        log(f"{script} does not exist")
        return None
    try:
        p = subprocess.run([str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=3600)
    except subprocess.TimeoutExpired:
        log("build-test-images timed out")
        return None
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    if p.returncode != 0 or not lines:
        log(f"build-test-images failed ({p.returncode}): {p.stderr.strip()[-300:]}")
        return None
    top = Path(lines[-1].strip())
    try:
        manifest = json.loads((top / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        log(f"cannot read the images manifest: {exc}")
        return None
    manifest["dir"] = top
    return manifest


# --------------------------------------------------------------------------------------------
# answers

def _int(x):
    try:
        return int(x)
    except (TypeError, ValueError):
        return x


def answers_from_inspector_xml(xml_text: str) -> dict | None:
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return None
    os_el = root.find("operatingsystem") if root.tag == "operatingsystems" else root
    if os_el is None or os_el.tag != "operatingsystem":
        return None

    def t(tag):
        el = os_el.find(tag)
        return el.text.strip() if el is not None and el.text else None

    mps = {(m.text or "").strip(): m.get("dev") for m in os_el.findall("mountpoints/mountpoint")}
    apps = os_el.findall("applications/application")
    return {"hostname": t("hostname"), "distro": t("distro"), "product_name": t("product_name"),
            "version": f"{_int(t('major_version'))}.{_int(t('minor_version'))}",
            "mountpoints": dict(sorted(mps.items())),
            "applications": len(apps) if os_el.find("applications") is not None else None}


def _find_os(data):
    """The first mapping that looks like one operating system in vsh's JSON."""
    if isinstance(data, dict):
        if "distro" in data or "hostname" in data:
            return data
        for key in ("operatingsystems", "operating_systems", "oses", "os", "roots"):
            if key in data:
                found = _find_os(data[key])
                if found is not None:
                    return found
        for v in data.values():
            found = _find_os(v)
            if found is not None:
                return found
    elif isinstance(data, list):
        for v in data:
            found = _find_os(v)
            if found is not None:
                return found
    return None


def answers_from_vsh_json(json_text: str) -> dict | None:
    try:
        data = json.loads(json_text)
    except ValueError:
        return None
    o = _find_os(data)
    if o is None:
        return None
    major = o.get("major_version", o.get("major"))
    minor = o.get("minor_version", o.get("minor"))
    mps = o.get("mountpoints") or {}
    if isinstance(mps, list):
        pairs = {}
        for m in mps:
            if isinstance(m, dict):
                mp = m.get("mountpoint") or m.get("path") or m.get("mp") or m.get("text")
                dev = m.get("device") or m.get("dev")
                pairs[mp] = dev
            elif isinstance(m, (list, tuple)) and len(m) == 2:
                a, b = m
                pairs[a if str(a).startswith("/") and not str(a).startswith("/dev/") else b] = \
                    b if str(b).startswith("/dev/") else a
        mps = pairs
    apps = o.get("applications")
    if isinstance(apps, list):
        napps = len(apps)
    elif isinstance(apps, int):
        napps = apps
    else:
        napps = o.get("applications_count", o.get("n_applications"))
    return {"hostname": o.get("hostname"), "distro": o.get("distro"), "product_name": o.get("product_name"),
            "version": f"{_int(major)}.{_int(minor)}", "mountpoints": dict(sorted(mps.items())),
            "applications": napps}


def answers_from_manifest(img: dict) -> dict | None:
    o = img.get("os")
    if not o:
        return None
    return {"hostname": o.get("hostname"), "distro": o.get("distro"), "product_name": o.get("product_name"),
            "version": f"{o.get('major_version')}.{o.get('minor_version')}",
            "mountpoints": dict(sorted((o.get("mountpoints") or {}).items())),
            "applications": o.get("applications")}


def diff(a: dict | None, b: dict | None) -> str:
    if a is None or b is None:
        return "n/a"
    keys = [k for k in a if a.get(k) != b.get(k)]
    return "identical" if not keys else "different: " + "; ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in keys)


# --------------------------------------------------------------------------------------------

def vsh_has(command: str) -> bool:
    try:
        p = subprocess.run([VSH, "help", command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0


def median_runs(argv, runs, env=None):
    """Run argv `runs` times; (median seconds, last CompletedProcess).  Stops after a failure:
    the peer's failures are deterministic, and each run costs 15-25 s here."""
    times, p = [], None
    while len(times) < runs:
        p, dt = run_cmd(argv, env=env)
        times.append(dt)
        if p.returncode != 0:
            break
    return statistics.median(times), p


def bench_image(key: str, img: dict, top: Path, peer_env: dict | None, vsh_ok: dict) -> None:
    path = str(top / img["file"])
    fmt = img.get("format", "raw")
    label = f"[{key}: {img['file']}]"
    expected = answers_from_manifest(img)
    peer_ans = vsh_ans = None
    t_peer_inspect = t_vsh_inspect = None
    # --- inspect
    if peer_env is not None:
        t, p = median_runs(["virt-inspector", f"--format={fmt}", "-a", path], PEER_RUNS, env=peer_env)
        if p.returncode == 0:
            t_peer_inspect = t
            peer_ans = answers_from_inspector_xml(text(p.stdout))
            report(f"virt-inspector {label}", f"{t:.2f} s")
        else:
            report(f"virt-inspector {label}", f"FAILED after {t:.2f} s: {last_err(p)}")
    if vsh_ok.get("inspect"):
        argv = [VSH, "inspect", "--json", path]
        p, _ = run_cmd(argv)
        if p.returncode == 0:
            t_vsh_inspect = timed(argv, runs=VSH_RUNS, warmup=1)
            vsh_ans = answers_from_vsh_json(text(p.stdout))
            if vsh_ans is None:  # fall back to the virt-inspector-shaped XML
                px, _ = run_cmd([VSH, "inspect", path])
                vsh_ans = answers_from_inspector_xml(text(px.stdout)) if px.returncode == 0 else None
            report(f"vsh inspect --json {label}", f"{t_vsh_inspect * 1000:.0f} ms")
        else:
            report(f"vsh inspect --json {label}", f"FAILED: {last_err(p)}")
    if t_peer_inspect and t_vsh_inspect:
        report(f"speed-up inspect virt-inspector/vsh {label} (goal >= 50x)",
               f"{t_peer_inspect / t_vsh_inspect:.0f}x")
    if peer_ans is not None and vsh_ans is not None:
        report(f"answers vsh vs virt-inspector {label}", diff(vsh_ans, peer_ans))
    elif vsh_ans is not None and peer_env is not None:
        report(f"answers vsh vs virt-inspector {label}", "virt-inspector gave no answer (see above)")
    if peer_ans is not None or vsh_ans is not None:
        if expected is not None:
            if vsh_ans is not None:
                report(f"answers vsh vs manifest {label}", diff(vsh_ans, expected))
            if peer_ans is not None:
                report(f"answers virt-inspector vs manifest {label}", diff(peer_ans, expected))
    # --- cat /etc/hostname
    out_peer = out_vsh = None
    t_peer_cat = t_vsh_cat = None
    if peer_env is not None:
        t, p = median_runs(["virt-cat", f"--format={fmt}", "-a", path, "/etc/hostname"], PEER_RUNS, env=peer_env)
        if p.returncode == 0:
            t_peer_cat, out_peer = t, p.stdout
            report(f"virt-cat /etc/hostname {label}", f"{t:.2f} s")
        else:
            report(f"virt-cat /etc/hostname {label}", f"FAILED after {t:.2f} s: {last_err(p)}")
    if vsh_ok.get("cat"):
        argv = [VSH, "-a", path, "-i", "cat", "/etc/hostname"]
        p, _ = run_cmd(argv)
        if p.returncode == 0:
            out_vsh = p.stdout
            t_vsh_cat = timed(argv, runs=VSH_RUNS, warmup=1)
            report(f"vsh -a IMG -i cat /etc/hostname {label}", f"{t_vsh_cat * 1000:.0f} ms")
        else:
            report(f"vsh -a IMG -i cat /etc/hostname {label}", f"FAILED: {last_err(p)}")
    if t_peer_cat and t_vsh_cat:
        report(f"speed-up cat virt-cat/vsh {label} (goal >= 50x)", f"{t_peer_cat / t_vsh_cat:.0f}x")
    if out_peer is not None and out_vsh is not None:
        report(f"cat output vsh vs virt-cat {label}",
               "identical" if out_peer == out_vsh else f"different: {out_vsh!r} vs {out_peer!r}")


# --------------------------------------------------------------------------------------------
# download of 1 GiB

def file_extents(image: str, path: str, block_size: int | None = None):
    """[(byte offset in the image, byte length)] of `path` in a bare ext4 image, via debugfs."""
    p = subprocess.run(["debugfs", "-R", f"stat {path}", image], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    if block_size is None:
        s = subprocess.run(["debugfs", "-R", "stats", image], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True).stdout
        m = re.search(r"Block size:\s*(\d+)", s)
        block_size = int(m.group(1)) if m else 4096
    m = re.search(r"EXTENTS:\s*\n(.*?)(?:\n\S|\Z)", p.stdout, re.S)
    if not m:
        return None
    out = []
    for a, b, c, d in re.findall(r"\((\d+)-(\d+)\):(\d+)-(\d+)", m.group(1)):
        out.append((int(c) * block_size, (int(d) - int(c) + 1) * block_size))
    for a, c in re.findall(r"\((\d+)\):(\d+)", m.group(1)):
        out.append((int(c) * block_size, block_size))
    out.sort()
    return out or None


def make_big_image(tmp: Path):
    src = tmp / "bigsrc"
    src.mkdir()
    subprocess.run(["head", "-c", str(GIB), "/dev/urandom"], stdout=open(src / "big", "wb"), check=True)
    img = tmp / "big-ext4.img"
    subprocess.run(["truncate", "-s", str(GIB + 128 * (1 << 20)), str(img)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(src), str(img)], check=True)
    shutil.rmtree(src)
    return str(img), "/big", GIB


def bench_download(manifest: dict | None, tmp: Path, vsh_ok: dict) -> None:
    big = (manifest or {}).get("images", {}).get("big")
    made = False
    if big and (manifest["dir"] / big["file"]).exists():
        image, inner, size = str(manifest["dir"] / big["file"]), big["path"], int(big["size"])
    else:
        log("making a 1 GiB ext4 image in /tmp (mkfs.ext4 -d)")
        image, inner, size = make_big_image(tmp)
        made = True
    try:
        time_download(image, inner, size, file_extents(image, inner), "", tmp, vsh_ok,
                      (big or {}).get("sha256"))
    finally:
        if made:
            Path(image).unlink(missing_ok=True)


def time_download(image: str, inner: str, size: int, extents, label: str, tmp: Path, vsh_ok: dict,
                  sha: str | None = None) -> None:
    """vsh's download of a 1 GiB guest file against dd of its extents straight from the image."""
    out = tmp / "out.bin"
    if extents and sum(n for _, n in extents) >= size:
        # the file's own bytes, extent by extent (the last block may be partial)
        script, left = [], size
        for off, n in extents:
            n = min(n, left)
            if n <= 0:
                break
            script.append(f"dd if='{image}' bs=4M iflag=skip_bytes,count_bytes skip={off} count={n} status=none")
            left -= n
        base_argv = ["sh", "-c", "{ " + "; ".join(script) + "; } > " + str(out)]
        how = f"dd of the file's {len(script)} extents"
    else:
        base_argv = ["sh", "-c", f"head -c {size} '{image}' > {out}"]
        how = "head -c of the image"
    forms = [
        ("-i download", [VSH, "-a", image, "-i", "download", inner, str(out)], None),
        ("-m /dev/sda download", [VSH, "-a", image, "-m", "/dev/sda", "download", inner, str(out)], None),
        ("run; mount-ro; download (stdin)", [VSH, "-a", image],
         f"run\nmount-ro /dev/sda /\ndownload {inner} {out}\n".encode()),
    ]
    t_base = []
    t_vsh = []
    form = None
    if vsh_ok.get("download"):
        for name, argv, stdin in forms:
            out.unlink(missing_ok=True)
            p, _ = run_cmd(argv, stdin=stdin)
            if p.returncode == 0 and out.exists() and out.stat().st_size == size:
                form = (name, argv, stdin)
                break
            log(f"vsh {name}: {last_err(p) if p.returncode else 'wrong output size'}")
        if form is None:
            report(f"vsh download 1 GiB{label}", "FAILED in every form tried")
        elif sha:
            h = subprocess.run(["sha256sum", str(out)], stdout=subprocess.PIPE, text=True).stdout.split()[0]
            report(f"vsh download 1 GiB{label}: sha256", "matches the source" if h == sha else "MISMATCH")
    out.unlink(missing_ok=True)
    subprocess.run(base_argv, check=True)  # warm the page cache
    for _ in range(3):
        out.unlink(missing_ok=True)
        _, dt = run_cmd(base_argv)
        t_base.append(dt)
        if form is not None:
            out.unlink(missing_ok=True)
            p, dt = run_cmd(form[1], stdin=form[2])
            if p.returncode == 0:
                t_vsh.append(dt)
    out.unlink(missing_ok=True)
    mb = size / (1 << 20)
    tb = statistics.median(t_base)
    report(f"read 1 GiB{label} straight from the raw image ({how})", f"{tb:.2f} s ({mb / tb:.0f} MiB/s)")
    if t_vsh:
        tv = statistics.median(t_vsh)
        report(f"vsh -a IMG {form[0]} of 1 GiB{label}", f"{tv:.2f} s ({mb / tv:.0f} MiB/s)")
        report(f"ratio download throughput{label} vsh/raw read (goal >= 0.5x)", f"{tb / tv:.2f}x")


def xfs_extents(image: str, path: str):
    """[(byte offset in the image, byte length)] of `path` in a bare XFS image, via xfs_db: an XFS
    block number is (group << agblklog) | block, the device offset (group * agblocks + block)."""
    sb = subprocess.run(["xfs_db", "-r", "-c", "sb 0", "-c", "p agblocks blocksize", image],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    geo = dict(re.findall(r"(\w+) = (\d+)", sb))
    bmap = subprocess.run(["xfs_db", "-r", "-c", f"path {path}", "-c", "bmap", image],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    agblocks, bsize = int(geo.get("agblocks", 0)), int(geo.get("blocksize", 0))
    out = [((int(ag) * agblocks + int(agb)) * bsize, int(n) * bsize)
           for ag, agb, n in re.findall(r"\((\d+)/(\d+)\) count (\d+)", bmap)]
    return out or None


def bench_xfs_download(tmp: Path, vsh_ok: dict) -> None:
    """A 1 GiB file in the second allocation group of an XFS image (mkfs.xfs -p, nothing mounted)."""
    if shutil.which("mkfs.xfs") is None:
        report("xfs download 1 GiB", "skipped: xfsprogs is not installed")
        return
    log("making a 1 GiB file in the second allocation group of an XFS image (mkfs.xfs -p)")
    src = tmp / "xfs-big"
    with open(src, "wb") as f:
        subprocess.run(["head", "-c", str(GIB), "/dev/urandom"], stdout=f, check=True)
    sha = subprocess.run(["sha256sum", str(src)], stdout=subprocess.PIPE, text=True).stdout.split()[0]
    proto = tmp / "xfs-proto"
    proto.write_text(f"/dev/null\n0 0\nd--755 0 0\nd d--755 0 0\nbig ---644 0 0 {src}\n$\n$\n")
    image = tmp / "big-xfs.img"
    try:
        subprocess.run(["truncate", "-s", str(GIB * 5 // 2), str(image)], check=True)
        subprocess.run(["mkfs.xfs", "-q", "-d", "agcount=2", "-p", str(proto), str(image)], check=True)
        src.unlink()
        time_download(str(image), "/d/big", GIB, xfs_extents(str(image), "/d/big"), " (xfs)", tmp, vsh_ok, sha)
    finally:
        src.unlink(missing_ok=True)
        image.unlink(missing_ok=True)


def run() -> None:
    print("== guestfs: vsh in-process vs libguestfs (issue 4)", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="vsh-bench-guestfs-"))
    try:
        vsh_ok = {c: Path(VSH).exists() and vsh_has(c) for c in ("inspect", "cat", "download")}
        missing = [c for c, ok in vsh_ok.items() if not ok]
        if missing:
            log(f"vsh has no {', '.join(missing)} command yet: those vsh figures are skipped")
        manifest = test_images()
        peer_env = None
        if PEER_RUNS <= 0:
            log("VSH_BENCH_PEER_RUNS=0: libguestfs figures skipped")
        elif ensure_libguestfs():
            kenv = supermin_kernel_env()
            if kenv is not None:
                peer_env = dict(os.environ, LIBGUESTFS_BACKEND="direct",
                                LIBGUESTFS_BACKEND_SETTINGS="force_tcg", **kenv)
        else:
            log("libguestfs-tools unavailable: libguestfs figures skipped")
        if manifest is None:
            report("guestfs inspect/cat", "skipped: no test images (scripts/build-test-images)")
        else:
            if peer_env is not None:
                # the first libguestfs call builds the supermin appliance (cached in /var/tmp)
                first = manifest["images"].get(IMAGES[0]) if IMAGES else None
                if first:
                    t0 = time.perf_counter()
                    p, _ = run_cmd(["virt-cat", f"--format={first.get('format', 'raw')}", "-a",
                                    str(manifest["dir"] / first["file"]), "/etc/hostname"], env=peer_env)
                    report("libguestfs warm-up (appliance build/check + one virt-cat)",
                           f"{time.perf_counter() - t0:.1f} s")
            for key in IMAGES:
                img = manifest["images"].get(key)
                if img is None:
                    log(f"no image '{key}' in the manifest")
                    continue
                bench_image(key, img, manifest["dir"], peer_env, vsh_ok)
        bench_download(manifest, tmp, vsh_ok)
        bench_xfs_download(tmp, vsh_ok)
        import bench_guestwrite

        bench_guestwrite.run(manifest, tmp, peer_env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
