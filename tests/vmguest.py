"""A running test guest driven through its serial console (shared by the VM test modules).

The test modules import it as ``vmguest`` (tests/conftest.py puts this directory on the path).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_ENV = dict(os.environ)          # before conftest points HOME/XDG into tmp dirs


def store_env(base: Path, store: Path) -> dict:
    """The environment of a vsh that keeps its store in ``store`` (HOME in ``base``, this
    checkout first on the path), taken from the environment before the fixtures changed it."""
    env = dict(REAL_ENV, VSH_DEFAULT_URI=f"vsh:///session?root={store}", HOME=str(base), PYTHONPATH=str(ROOT))
    env.pop("VSH_URI", None)
    return env


def module_store(tmp_path_factory, label: str) -> tuple[dict, Path, Path, dict]:
    """(manifest, base dir, store dir, environment) for a test module's guests; skips the module
    when there is no test guest."""
    m = manifest()
    if m is None:
        import pytest

        pytest.skip("no test guest: scripts/build-test-guest failed or is missing")
    base = tmp_path_factory.mktemp(label)
    store = base / "store"
    return m, base, store, store_env(base, store)


def manifest() -> dict | None:
    script = ROOT / "scripts" / "build-test-guest"
    if not script.exists():
        return None
    try:
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              env=REAL_ENV, timeout=900)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    path = Path(proc.stdout.strip().splitlines()[-1]) / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else None


class Guest:
    """A running domain of the module's store, and its shell on the serial console."""

    def __init__(self, store: Path, name: str, env: dict, prefix: tuple = ()):
        self.store, self.name, self.env = store, name, env
        self.prefix = list(prefix)          # e.g. ["ip", "netns", "exec", NS]
        self.rundir = store / "run" / name
        self.n = 0
        self.pty = None
        self._stop = threading.Event()

    def open_console(self) -> None:
        """Hold the console pty open (QEMU reads it only while someone does) and drain it."""
        self.pty = os.open(self.state()["console_pty"], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

        def drain():
            while not self._stop.is_set():
                if select.select([self.pty], [], [], 0.2)[0]:
                    try:
                        os.read(self.pty, 65536)
                    except OSError:
                        return
        threading.Thread(target=drain, daemon=True).start()

    @contextmanager
    def running(self, xml, ready_line: str):
        """Define the domain of the XML file ``xml``, start it and wait for ``ready_line`` on its
        console; destroy it when the block ends (a module fixture's ``with``)."""
        self.vsh("define", xml)
        self.vsh("start", self.name)
        try:
            self.wait_log(ready_line)
            yield self
        finally:
            self.close_console()
            self.vsh("destroy", self.name, check=False)

    def close_console(self) -> None:
        self._stop.set()
        if self.pty is not None:
            time.sleep(0.3)
            os.close(self.pty)
            self.pty = None

    def vsh(self, *args, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self.prefix, sys.executable, "-m", "vsh", *map(str, args)], env=self.env,
                              capture_output=True, text=True, timeout=120)
        if check:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def state(self) -> dict:
        return json.loads((self.rundir / "state.json").read_text())

    def log(self) -> str:
        return (self.rundir / "console.log").read_bytes().decode(errors="replace")

    def wait_log(self, text: str, count: int = 1, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not seen on the console of {self.name}:\n{self.log()[-2000:]}")

    def sh(self, cmd: str, timeout: float = 60.0) -> str:
        """Run ``cmd`` in the guest shell; its output (from the console log)."""
        self.n += 1
        tag = f"M{5000 + self.n}E"
        before = len(self.log())
        if self.pty is None:
            self.open_console()
        begin = f"B{5000 + self.n}B"
        data = f"echo B$((5000+{self.n}))B\n{cmd}\necho M$((5000+{self.n}))E\n".encode()
        while data:
            select.select([], [self.pty], [], 5.0)
            data = data[os.write(self.pty, data):]
        self.wait_log(tag, timeout=timeout)
        out = self.log()[before:]
        return out[out.index(begin) + len(begin):out.index(tag)]

    def qmp(self, cmd: str, args: dict | None = None):
        from vsh.kvm import client

        return client.qmp(str(self.rundir), cmd, args)

    def xml(self, *flags) -> str:
        return self.vsh("dumpxml", self.name, *flags).stdout

    def config_bytes(self) -> bytes:
        return (self.store / "config" / "domains" / f"{self.name}.xml").read_bytes()

    def live_bytes(self) -> bytes:
        return (self.rundir / "live.xml").read_bytes()

    def open_files(self) -> set[str]:
        fds = Path(f"/proc/{self.state()['qemu_pid']}/fd")
        out = set()
        for fd in fds.iterdir():
            try:
                out.add(os.readlink(fd))
            except OSError:
                pass
        return out


def guest_domain_xml(name: str, m: dict, devices: str, memory_mib: int = 256, machine: str = "pc") -> str:
    """A domain that boots the test guest of manifest ``m`` (kernel, initrd, ACPI, a serial console)
    with ``devices`` (XML text) besides the console."""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
    <kernel>{m.get('vmlinux') or m['kernel']}</kernel>
    <initrd>{m['initrd']}</initrd>
    <cmdline>{m['cmdline']}</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    {devices.strip()}
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
"""


def defined_guest(env, name: str, extra: str = "") -> "Guest":
    """The test guest defined as ``name`` in a module store (``env``: what :func:`module_store`
    returned), with ``extra`` (domain XML text) after its ``<vcpu>``; not started."""
    m, base, store, e = env
    xml = guest_domain_xml(name, m, "").replace("<vcpu>1</vcpu>", "<vcpu>1</vcpu>\n  " + extra)
    path = base / f"{name}.xml"
    path.write_text(xml)
    g = Guest(store, name, e)
    g.vsh("define", path)
    return g


def microvm_xml(name: str, m: dict, memory_mib: int = 128, extra: str = "") -> str:
    """A microvm domain booting the test guest with ACPI and a pty serial console;
    ``extra`` goes after ``<features>`` (lifecycle actions, say)."""
    cmdline = f"{m['cmdline']} {m.get('microvm_cmdline_extra', '')}".strip()
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{m.get('vmlinux') or m['kernel']}</kernel>
    <initrd>{m['initrd']}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>{extra}
  <devices>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
"""


def qemu_cgroups(pid: int) -> list[Path]:
    """QEMU's own group in each hierarchy that has it (v1: /sys/fs/cgroup/CTL/…, v2: the top)."""
    found = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _id, ctls, path = line.split(":", 2)
        if path.endswith(f"/vsh.slice/qemu-{pid}"):
            mount = Path("/sys/fs/cgroup") / (ctls.split(",")[0] if ctls else "")
            found.append(mount / path.lstrip("/"))
    return found


def poll(pred, timeout: float, interval: float = 0.05):
    """``pred()`` once it is true, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    return None


# -- vsh event listeners ---------------------------------------------------------------------------


def listen(vm, *args, stdout=subprocess.PIPE) -> subprocess.Popen:
    """``vsh event ...`` in the background; it has subscribed once the supervisor counts it (the
    caller waits for that with :func:`subscribed`). Python's faulthandler is on, so that
    :func:`ended` can show where a listener that does not end is."""
    return subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "vsh", "event", *map(str, args)],
                            env=vm.env, stdout=stdout, stderr=subprocess.PIPE, text=True)


def ended(proc: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    """The listener's output once it ended; a listener still there after ``timeout`` s is a
    failure that shows its threads' stacks (SIGABRT: faulthandler's dump)."""
    import signal

    import pytest

    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"vsh event did not end within {timeout:g} s; its output: {out!r}; its stacks:\n{err}")


def subscribed(vm, before: int) -> None:
    """Wait until the supervisor has one more event subscriber than ``before``."""
    assert poll(lambda: subscribers(vm) > before, timeout=30), "the listener never subscribed"


def subscribers(vm) -> int:
    """Connections to the domain's control socket (each event listener holds one)."""
    sock = str(vm.rundir / "control.sock")
    out = subprocess.run(["ss", "-x", "-H"], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if sock in line)
