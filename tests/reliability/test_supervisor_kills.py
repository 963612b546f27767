"""Reliability campaigns for supervision (issue 15 §5), on real guests under TCG.

* kill -9 of random supervisors and QEMUs (one, or both) among a few guests: every
  domain then answers ``domstate`` with the right state, and none is wedged (each
  can still be suspended and resumed, or started again).
* kill -9 of the supervisor at a random moment of an ACPI reboot: the guest comes back.
* destroy past a SIGSTOPped supervisor: ``shut off (destroyed)``, before and after
  SIGCONT, never restarted.

Bounded by default (each campaign ≤ ~60 s of work); ``--long`` runs many more
iterations.  Each prints its figures (tried / held) and fails on the first miss.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

import vmguest as _vmguest

pytestmark = pytest.mark.vm

Guest = _vmguest.Guest

BUDGET_S = 45.0                     # the bounded form: stop starting iterations after this


def domain_xml(name: str, m: dict, on_crash: str) -> str:
    return _vmguest.microvm_xml(name, m, memory_mib=96, extra=f"\n  <on_crash>{on_crash}</on_crash>")


def alive(pid, starttime=None) -> bool:
    from vsh.core.runtime import pid_alive

    return pid_alive(pid, starttime)


wait_until = _vmguest.poll


class Fleet:
    def __init__(self, m, base: Path, names_crash: dict):
        self.m = m
        self.store = base / "store"
        self.env = _vmguest.store_env(base, self.store)
        self.guests = {}
        self.on_crash = names_crash
        for name, on_crash in names_crash.items():
            xml = base / f"{name}.xml"
            xml.write_text(domain_xml(name, m, on_crash))
            g = Guest(self.store, name, self.env)
            g.vsh("define", xml)
            g.vsh("start", name)
            self.guests[name] = g

    def domstate(self, name: str) -> str:
        return self.guests[name].vsh("domstate", name, "--reason").stdout.strip()

    def close(self) -> None:
        for g in self.guests.values():
            g.vsh("destroy", g.name, check=False)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    m = _vmguest.manifest()
    if m is None:
        pytest.skip("no test guest: scripts/build-test-guest failed or is missing")
    f = Fleet(m, tmp_path_factory.mktemp("reliab"), {"k1": "restart", "k2": "destroy", "k3": "restart"})
    yield f
    f.close()


def _iterations(long_mode: bool, bounded: int, long: int):
    """Yield iteration numbers: ``bounded`` (and at most BUDGET_S of work) or ``long`` with --long."""
    t0 = time.monotonic()
    for i in range(long if long_mode else bounded):
        if not long_mode and time.monotonic() - t0 > BUDGET_S:
            return
        yield i


def _check_controllable(fleet: Fleet, name: str) -> str | None:
    """None if ``name`` is running under a live supervisor and obeys suspend/resume, else why not."""
    g = fleet.guests[name]
    st = g.state()
    if st["state"] != "running":
        return f"{name}: state.json says {st['state']} ({st['reason']})"
    if not alive(st["supervisor_pid"], st["supervisor_starttime"]):
        return f"{name}: no supervisor after a query"
    if g.vsh("suspend", name, check=False).returncode or fleet.domstate(name) != "paused (user)":
        return f"{name}: suspend failed"
    if g.vsh("resume", name, check=False).returncode or fleet.domstate(name) != "running (unpaused)":
        return f"{name}: resume failed"
    return None


def test_kill_random_supervisors_and_qemus(fleet, long_mode):
    rng = random.Random(int(os.environ.get("VSH_CAMPAIGN_SEED", "15")))
    tried = held = 0
    misses = []
    for _ in _iterations(long_mode, bounded=12, long=600):
        name = rng.choice(sorted(fleet.guests))
        g = fleet.guests[name]
        if fleet.domstate(name).startswith("shut off"):
            g.vsh("start", name)
        st = g.state()
        victim = rng.choice(["supervisor", "qemu", "both"])
        tried += 1
        if victim in ("supervisor", "both"):
            os.kill(st["supervisor_pid"], signal.SIGKILL)
            wait_until(lambda: not alive(st["supervisor_pid"], st["supervisor_starttime"]), 5)
        if victim in ("qemu", "both"):
            os.kill(st["qemu_pid"], signal.SIGKILL)
            wait_until(lambda: not alive(st["qemu_pid"], st["qemu_starttime"]), 5)
        # every domain answers, and says the right thing
        states = {n: fleet.domstate(n) for n in sorted(fleet.guests)}
        got = states[name]
        if victim == "supervisor":
            ok = got.startswith("running") and _check_controllable(fleet, name) is None
        elif victim == "both":
            ok = got == "shut off (unknown)"            # QEMU died with nobody watching
        else:
            settled = wait_until(lambda: (s := fleet.domstate(name)) in ("running (booted)", "shut off (crashed)")
                                 and s, 20)
            restarted_ok = fleet.on_crash[name] == "restart" and (
                settled == "running (booted)" or "not restarting it again" in
                (g.rundir / "supervisor.log").read_text())
            ok = settled == "shut off (crashed)" and fleet.on_crash[name] == "destroy" or restarted_ok
            got = settled
        others_ok = all(s.startswith(("running", "shut off", "paused")) for s in states.values())
        if ok and others_ok:
            held += 1
        else:
            misses.append((victim, name, got, states))
    print(f"kill -9 campaign: tried {tried}, held {held}")
    assert not misses, misses
    assert tried and held == tried


def test_kill_supervisor_during_acpi_reboot(fleet, long_mode):
    rng = random.Random(int(os.environ.get("VSH_CAMPAIGN_SEED", "15")))
    g = fleet.guests["k1"]
    ready = fleet.m["ready_line"]
    tried = held = 0
    misses = []
    for _ in _iterations(long_mode, bounded=3, long=100):
        if not fleet.domstate("k1").startswith("running"):
            g.vsh("start", "k1")
        g.wait_log(ready, count=g.log().count(ready) or 1)
        n = g.log().count(ready)
        st = g.state()
        assert g.vsh("reboot", "k1").returncode == 0
        time.sleep(rng.uniform(0.0, 1.5))
        os.kill(st["supervisor_pid"], signal.SIGKILL)
        tried += 1
        time.sleep(2.0)                 # the guest powers off meanwhile (or did already)
        came_back = wait_until(lambda: fleet.domstate("k1").startswith("running")
                               and g.log().count(ready) > n, 60)
        if came_back and g.state()["qemu_pid"] == st["qemu_pid"] and _check_controllable(fleet, "k1") is None:
            held += 1
        else:
            misses.append((fleet.domstate("k1"), g.state()))
    print(f"kill -9 during ACPI reboot: tried {tried}, held {held}")
    assert not misses, misses


def test_destroy_past_a_stopped_supervisor(fleet, long_mode):
    g = fleet.guests["k3"]          # on_crash=restart: must not come back
    tried = held = 0
    misses = []
    for _ in _iterations(long_mode, bounded=4, long=200):
        if fleet.domstate("k3").startswith("shut off"):
            g.vsh("start", "k3")
        st = g.state()
        tried += 1
        os.kill(st["supervisor_pid"], signal.SIGSTOP)
        try:
            out = g.vsh("destroy", "k3", check=False).stdout
            during = fleet.domstate("k3")
        finally:
            os.kill(st["supervisor_pid"], signal.SIGCONT)
        wait_until(lambda: not alive(st["supervisor_pid"], st["supervisor_starttime"]), 15)
        after = fleet.domstate("k3")
        if out.startswith("Domain 'k3' destroyed") and during == after == "shut off (destroyed)" \
                and not alive(st["qemu_pid"], st["qemu_starttime"]) and g.state()["state"] == "shutoff":
            held += 1
        else:
            misses.append((out, during, after))
    print(f"destroy past a stopped supervisor: tried {tried}, held {held}")
    assert not misses, misses
