"""<perf> events on a real TCG guest (vsh/kvm/perf.py): the supervisor opens the counters on
QEMU's threads at start and on ``perf --enable``, ``domstats --perf`` reports them as
``perf.NAME`` (libvirt's names), ``perf --disable`` closes them, and an event the host cannot
count (a hardware event without a PMU, as in this VM host) is refused with the reason, at
start and live."""

from __future__ import annotations

import os
import shutil

import pytest

import vmguest

pytestmark = [pytest.mark.vm,
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64")]

HAS_PMU = os.path.exists("/sys/bus/event_source/devices/cpu")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return vmguest.module_store(tmp_path_factory, "perf")


def _perf_stats(g) -> dict:
    out = g.vsh("domstats", g.name, "--perf").stdout
    return {k.strip(): int(v) for k, v in (line.split("=", 1) for line in out.splitlines() if "=" in line)}


def test_software_events_counted_from_start_and_changed_live(env):
    g = vmguest.defined_guest(env, "pf1", "<perf><event name='task_clock' enabled='yes'/>"
                                          "<event name='context_switches' enabled='yes'/></perf>")
    g.vsh("start", "pf1")
    try:
        first = _perf_stats(g)
        assert set(first) == {"perf.task_clock", "perf.context_switches"}, first
        assert first["perf.task_clock"] > 0             # ns of CPU time QEMU's threads used
        later = vmguest.poll(lambda: (lambda s: s if s["perf.task_clock"] > first["perf.task_clock"] else None)(
            _perf_stats(g)), timeout=30)
        assert later, "task_clock did not grow while the guest runs"
        assert "task_clock     : enabled\n" in g.vsh("perf", "pf1").stdout

        g.vsh("perf", "pf1", "--enable", "page_faults,cpu_migrations", "--disable", "context_switches")
        assert set(_perf_stats(g)) == {"perf.task_clock", "perf.page_faults", "perf.cpu_migrations"}
        live = g.vsh("perf", "pf1").stdout
        assert "page_faults    : enabled\n" in live and "context_switches: disabled\n" in live
        assert "<event name='page_faults' enabled='yes'/>" in g.xml()
        assert "page_faults" not in g.xml("--inactive")             # --live (current) only

        res = g.vsh("perf", "pf1", "--enable", "cmt", check=False)
        assert res.returncode == 1 and "intel_cqm" in res.stderr, res.stderr
        if not HAS_PMU:
            res = g.vsh("perf", "pf1", "--enable", "cpu_cycles", check=False)
            assert res.returncode == 1, res.stdout
            assert res.stderr.startswith("error: unsupported configuration: perf event 'cpu_cycles': the host's CPU "
                                         "exposes no hardware performance counter"), res.stderr
            assert "cpu_cycles" not in g.xml()
        assert set(_perf_stats(g)) == {"perf.task_clock", "perf.page_faults", "perf.cpu_migrations"}
    finally:
        g.vsh("destroy", "pf1")
    assert g.vsh("domstats", "pf1", "--perf").stdout == "Domain: 'pf1'\n\n"


@pytest.mark.skipif(HAS_PMU, reason="the host has a hardware PMU: cpu_cycles can be counted")
def test_a_hardware_event_the_host_cannot_count_fails_the_start_with_why(env):
    g = vmguest.defined_guest(env, "pf2", "<perf><event name='cpu_cycles' enabled='yes'/></perf>")
    res = g.vsh("start", "pf2", "--paused", check=False)
    assert res.returncode == 1
    assert res.stderr.startswith("error: Failed to start domain 'pf2'\nerror: unsupported configuration: perf event "
                                 "'cpu_cycles': the host's CPU exposes no hardware performance counter"), res.stderr
    assert g.vsh("domstate", "pf2").stdout.strip() == "shut off"
