"""A full start → console → shutdown cycle as an unprivileged user (issue 3 §6).

vsh runs as the system user ``vshtest`` (created when missing) through
``setpriv --reuid --regid --init-groups``, with HOME and the XDG directories in a
directory that user owns, its own store (``vsh:///session``) and TCG.  The test
guest's kernel and initramfs are copied where that user can read them.  Needs root
(to create the user and switch to it); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]
REAL_ENV = dict(os.environ)          # before conftest points HOME/XDG into tmp dirs
USER = "vshtest"
NAME = "u1"


# --------------------------------------------------------------------------------------
# the user, its directories, and running vsh as it
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def user():
    if os.geteuid() != 0:
        pytest.skip("needs root: creates the system user 'vshtest' and switches to it")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is missing")
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    proc = subprocess.run(["useradd", "--system", "--create-home", "--shell", "/bin/sh", USER],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 and "already exists" not in proc.stderr:
        pytest.skip(f"cannot create user {USER}: {proc.stderr.strip()}")
    return pwd.getpwnam(USER)


@pytest.fixture(scope="module")
def guest():
    script = ROOT / "scripts" / "build-test-guest"
    if not script.exists():
        pytest.skip("scripts/build-test-guest is missing")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=REAL_ENV, timeout=900)
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.skip(f"no test guest: {proc.stderr.strip()[-300:]}")
    return json.loads((Path(proc.stdout.strip().splitlines()[-1]) / "manifest.json").read_text())


class UserEnv:
    """The user's private directory: home, XDG directories, runtime dir, guest files."""

    def __init__(self, pw, base: Path):
        self.pw = pw
        self.base = base
        self.home = base / "home"
        self.run = base / "run"
        self.config = self.home / ".config"
        self.data = self.home / ".local" / "share"
        self.cache = self.home / ".cache"
        self.rundir = self.run / "vsh" / NAME

    def env(self) -> dict:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home), "USER": USER,
                "LOGNAME": USER, "LANG": "C.UTF-8", "TERM": "xterm",
                "XDG_RUNTIME_DIR": str(self.run), "XDG_CONFIG_HOME": str(self.config),
                "XDG_DATA_HOME": str(self.data), "XDG_CACHE_HOME": str(self.cache),
                "PYTHONDONTWRITEBYTECODE": "1"}

    def argv(self, *args) -> list[str]:
        return ["setpriv", f"--reuid={self.pw.pw_uid}", f"--regid={self.pw.pw_gid}", "--init-groups",
                "--", sys.executable, "-m", "vsh", "-c", "vsh:///session", *map(str, args)]

    def vsh(self, *args, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), input=input or "", capture_output=True, text=True,
                              env=self.env(), cwd=self.base, timeout=timeout)


@pytest.fixture(scope="module")
def uenv(user, guest):
    base = Path(tempfile.mkdtemp(prefix="vsh-unpriv-", dir="/tmp"))
    u = UserEnv(user, base)
    files = base / "guest"
    for d in (u.home, u.run, files):
        d.mkdir(mode=0o700)
    shutil.copy(guest.get("vmlinux") or guest["kernel"], files / "vmlinux")
    shutil.copy(guest["initrd"], files / "initrd.img")
    cmdline = f"{guest['cmdline']} {guest.get('microvm_cmdline_extra', '')}".strip()
    for name, dtype, uuid in ((NAME, "qemu", "5f0a2c1e-7d4b-4e6a-9c3f-2b8d1e0a7c41"),
                              ("u-kvm", "kvm", "5f0a2c1e-7d4b-4e6a-9c3f-2b8d1e0a7c42")):
        (base / f"{name}.xml").write_text(f"""<domain type='{dtype}'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{files / 'vmlinux'}</kernel>
    <initrd>{files / 'initrd.img'}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
""")
    os.chmod(base, 0o700)
    for dirpath, dirnames, filenames in os.walk(base):
        for entry in [dirpath] + [os.path.join(dirpath, f) for f in filenames]:
            os.chown(entry, user.pw_uid, user.pw_gid)
    probe = u.vsh("version")
    if probe.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"vsh cannot run as {USER} from {ROOT} (is the checkout readable by other "
                    f"users?): {probe.stderr.strip()[-300:]}")
    yield u
    u.vsh("destroy", NAME)
    shutil.rmtree(base, ignore_errors=True)


def _wait(pred, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _private(path: Path, uid: int, mode: int) -> None:
    st = os.lstat(path)
    assert st.st_uid == uid, f"{path} belongs to uid {st.st_uid}, not {uid}"
    assert stat.S_IMODE(st.st_mode) == mode, f"{path} has mode {oct(stat.S_IMODE(st.st_mode))}"


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


# --------------------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------------------

def test_host_probe_as_an_unprivileged_user(uenv):
    kvm_open = os.path.exists("/dev/kvm") and subprocess.run(
        ["setpriv", f"--reuid={uenv.pw.pw_uid}", f"--regid={uenv.pw.pw_gid}", "--init-groups", "--",
         "sh", "-c", "exec 3<>/dev/kvm"], capture_output=True).returncode == 0
    res = uenv.vsh("host-validate")
    line = next((x for x in res.stdout.splitlines() if "/dev/kvm is accessible" in x), None)
    if os.path.exists("/dev/kvm") and not kvm_open:
        assert line is not None and "FAIL" in line and "permission denied" in line, res.stdout
    assert any("TCG" in x and ": PASS" in x for x in res.stdout.splitlines()), res.stdout
    cache = uenv.cache / "vsh" / "host-probe.json"
    _private(cache, uenv.pw.pw_uid, 0o600)
    caps = uenv.vsh("capabilities")
    assert caps.returncode == 0 and "<domain type='qemu'" in caps.stdout, caps
    if not kvm_open:
        assert "<domain type='kvm'" not in caps.stdout
        assert uenv.vsh("define", uenv.base / "u-kvm.xml").returncode == 0
        res = uenv.vsh("start", "u-kvm")
        assert res.returncode == 1, res
        assert "domain type 'kvm' needs a usable KVM" in res.stderr and "type='qemu'" in res.stderr, res
        assert not (uenv.run / "vsh" / "u-kvm").exists()


def test_start_console_shutdown_as_an_unprivileged_user(uenv, guest):
    pexpect = pytest.importorskip("pexpect")
    uid = uenv.pw.pw_uid
    res = uenv.vsh("define", uenv.base / f"{NAME}.xml")
    assert res.returncode == 0, res
    res = uenv.vsh("start", NAME)
    assert res.returncode == 0, res
    assert res.stdout.startswith(f"Domain '{NAME}' started")
    rd = uenv.rundir
    try:
        st = json.loads((rd / "state.json").read_text())
        assert (st["state"], st["reason"]) == ("running", "booted")
        assert _uid_of(st["qemu_pid"]) == uid and _uid_of(st["supervisor_pid"]) == uid
        assert "-accel tcg" in " ".join(json.loads((rd / "launch.json").read_text())["argv"])

        # everything vsh made is the user's and private
        for d in (uenv.run / "vsh", rd, uenv.config / "vsh", uenv.config / "vsh" / "domains"):
            _private(d, uid, 0o700)
        _private(uenv.config / "vsh" / "domains" / f"{NAME}.xml", uid, 0o600)
        for entry in rd.iterdir():
            mode = 0o600
            _private(entry, uid, mode)
        for sock in ("control.sock", "qmp.sock"):
            assert stat.S_ISSOCK(os.lstat(rd / sock).st_mode), sock
        _private(rd / "state.json", uid, 0o600)

        _wait(lambda: guest["ready_line"].encode() in (rd / "console.log").read_bytes(), 90,
              "the guest's ready line")
        info = uenv.vsh("dominfo", NAME).stdout
        assert "State:          running" in info and "CPU time:" in info, info

        # the console on a real terminal, as the user; leave with ^]
        child = pexpect.spawn(uenv.argv("console", NAME)[0], uenv.argv("console", NAME)[1:],
                              env=uenv.env(), cwd=str(uenv.base), timeout=30, dimensions=(24, 80))
        child.expect_exact("Escape character is ^] (Ctrl + ])")
        child.send("\r")
        child.send("echo unpriv-$((6*7))\r")
        child.expect_exact("unpriv-42")
        child.send("\x1d")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, (child.exitstatus, child.before)

        res = uenv.vsh("shutdown", NAME)
        assert res.returncode == 0 and res.stdout.startswith(f"Domain '{NAME}' is being shutdown"), res
        _wait(lambda: uenv.vsh("domstate", NAME).stdout.strip() == "shut off", 60,
              "the guest to power off")
        res = uenv.vsh("domstate", NAME, "--reason")
        assert res.stdout.strip() == "shut off (shutdown)", res
        assert not (rd / "control.sock").exists() and not (rd / "qmp.sock").exists()
        for entry in rd.iterdir():
            _private(entry, uid, 0o600)
    finally:
        uenv.vsh("destroy", NAME)


def test_runtime_fallback_in_tmp_is_private(uenv):
    """Without XDG_RUNTIME_DIR the runtime directory is /tmp/vsh-UID: made 0700 by vsh, and
    refused when another user planted it first (here: a symbolic link owned by nobody)."""
    uid = uenv.pw.pw_uid
    fallback = Path(f"/tmp/vsh-{uid}")
    if os.path.lexists(fallback):
        pytest.skip(f"{fallback} exists already (another run of this user's vsh)")
    env = {k: v for k, v in uenv.env().items() if k != "XDG_RUNTIME_DIR"}
    run = lambda *a: subprocess.run(uenv.argv(*a), capture_output=True, text=True, env=env,  # noqa: E731
                                    cwd=uenv.base, timeout=120)
    assert run("define", uenv.base / f"{NAME}.xml").returncode == 0
    target = uenv.base / "planted"
    target.mkdir(mode=0o755)
    os.chown(target, uid, uenv.pw.pw_gid)
    os.symlink(target, fallback)
    try:
        os.chown(fallback, 65534, -1, follow_symlinks=False)         # nobody
        res = run("start", NAME, "--paused")
        assert res.returncode == 1 and f"symbolic link '{fallback}' belongs to another user" in res.stderr, res
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o755 and list(target.iterdir()) == []
    finally:
        os.unlink(fallback)
    try:
        res = run("start", NAME, "--paused")
        assert res.returncode == 0, res
        _private(fallback, uid, 0o700)
        _private(fallback / NAME, uid, 0o700)
        _private(fallback / NAME / "control.sock", uid, 0o600)
        assert run("domstate", NAME, "--reason").stdout.strip() == "paused (user)"
        assert run("destroy", NAME).returncode == 0
    finally:
        run("destroy", NAME)
        shutil.rmtree(fallback, ignore_errors=True)
