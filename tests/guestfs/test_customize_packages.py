"""vsh customize --install / --update with the guest's own apt, inside the appliance (VM lock).

Packages are made here with dpkg-deb. Without --network the guest's apt sees a file: source
copied into the guest; with --network it fetches from an HTTP server this test runs on the
host's loopback (QEMU's user networking shows it to the guest as 10.0.2.2).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading

import pytest

pytestmark = pytest.mark.vm
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REAL_CACHE = os.environ.get("VSH_CACHE_DIR") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vsh")


def _vsh(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=ROOT, VSH_DEFAULT_URI=f"vsh:///session?root={tmp_path}/store",
               VSH_CACHE_DIR=REAL_CACHE)
    return subprocess.run([sys.executable, "-m", "vsh", *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=900)


def _repo(top, *packages: tuple[str, str]) -> str:
    """A flat apt repository (Packages index) of tiny packages (name, version) each installing
    /usr/share/NAME/version."""
    os.makedirs(top)
    index = []
    for name, version in packages:
        build = os.path.join(top, f".{name}-{version}")
        os.makedirs(os.path.join(build, "DEBIAN"))
        os.makedirs(os.path.join(build, "usr", "share", name))
        with open(os.path.join(build, "usr", "share", name, "version"), "w") as f:
            f.write(version + "\n")
        control = (f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: vsh tests <t@example.org>\n"
                   f"Description: a package made by vsh's tests\n")
        with open(os.path.join(build, "DEBIAN", "control"), "w") as f:
            f.write(control)
        deb = f"{name}_{version}_all.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", build, os.path.join(top, deb)],
                       check=True, stdout=subprocess.DEVNULL)
        shutil.rmtree(build)
        data = open(os.path.join(top, deb), "rb").read()
        index.append(control + f"Filename: ./{deb}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")
    with open(os.path.join(top, "Packages"), "w") as f:
        f.write("\n".join(index))
    return top


@pytest.fixture
def disk(images, tmp_path):
    if shutil.which("dpkg-deb") is None or shutil.which("qemu-system-x86_64") is None:
        pytest.skip("needs dpkg-deb and QEMU")
    path = str(tmp_path / "gpt.img")
    subprocess.run(["cp", "--sparse=always", images.path("gpt"), path], check=True)
    return path


def _version(tmp_path, disk, name):
    r = _vsh(tmp_path, "--ro", "--format", "raw", "-a", disk, "-i", "cat", f"/usr/share/{name}/version")
    return r.stdout.strip() if r.returncode == 0 else None


def test_install_offline_from_a_local_source_then_update_over_the_network(disk, tmp_path):
    repo = _repo(str(tmp_path / "repo"), ("vsh-hello", "1.0"))
    r = _vsh(tmp_path, "customize", "-a", disk, "--format", "raw", "--copy-in", f"{repo}:/var/tmp",
             "--write", "/etc/apt/sources.list:deb [trusted=yes] file:/var/tmp/repo ./",
             "--install", "vsh-hello")
    assert r.returncode == 0, r.stderr
    assert "Installing packages: vsh-hello" in r.stdout
    assert _version(tmp_path, disk, "vsh-hello") == "1.0"
    apps = _vsh(tmp_path, "--ro", "--format", "raw", "-a", disk, "--json", "inspect")
    assert '"vsh-hello"' in apps.stdout

    # nothing resolves it offline: a clear error, the disk as it was
    r = _vsh(tmp_path, "customize", "-a", disk, "--format", "raw", "--install", "vsh-not-anywhere")
    assert r.returncode != 0
    assert "--install: apt exited with status 100 (no network" in r.stderr
    assert "vsh-not-anywhere" in r.stderr

    # --network: the guest's apt reaches a server on the host's loopback as 10.0.2.2
    served = _repo(str(tmp_path / "served"), ("vsh-hello", "1.1"), ("vsh-other", "2.0"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=served)
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        r = _vsh(tmp_path, "customize", "-a", disk, "--format", "raw", "--network",
                 "--write", f"/etc/apt/sources.list:deb [trusted=yes] http://10.0.2.2:{port}/ ./",
                 "--update", "--install", "vsh-other", "--run-command", "cat /etc/resolv.conf > /root/resolv-seen")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert r.returncode == 0, r.stderr
    assert _version(tmp_path, disk, "vsh-hello") == "1.1"
    assert _version(tmp_path, disk, "vsh-other") == "2.0"
    out = _vsh(tmp_path, "--ro", "--format", "raw", "-a", disk, "-i", "cat", "/root/resolv-seen")
    assert "10.0.2.3" in out.stdout
    assert not _vsh(tmp_path, "--ro", "--format", "raw", "-a", disk, "-i", "exists",
                    "/etc/.resolv.conf.vsh-saved").stdout.startswith("true")
