"""vsh.kvm.perf on a real child process (perf_event_open is the boundary; nothing is faked):
one counter per thread with inherit, the sum as the value, closing, and the reasons given for
events the host cannot count."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from vsh.kvm import perf

SPIN = "import threading, time\n" \
       "def spin():\n    while True: time.sleep(0)\n" \
       "[threading.Thread(target=spin, daemon=True).start() for _ in range(2)]\n" \
       "print('ready', flush=True)\ntime.sleep(60)\n"


@pytest.fixture
def busy():
    proc = subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    try:
        try:
            perf.open_event("task_clock", proc.pid)
        except perf.PerfError as exc:
            pytest.skip(f"perf_event_open is not allowed here: {exc.strerror}")
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_software_counters_cover_every_thread_and_close(busy):
    counters = perf.Counters()
    counters.enable(busy.pid, ["context_switches", "task_clock"])
    assert counters.enabled == ["task_clock", "context_switches"]            # libvirt's order
    assert len(counters.fds["task_clock"]) == len(os.listdir(f"/proc/{busy.pid}/task"))
    first = counters.values()["task_clock"]
    assert first >= 0
    deadline = time.monotonic() + 30
    while counters.values()["context_switches"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)                            # the threads yield: it grows
    assert counters.values()["context_switches"] > 0
    fds = counters.fds["task_clock"]
    counters.disable(["task_clock"])
    assert counters.enabled == ["context_switches"]
    with pytest.raises(OSError):
        os.fstat(fds[0])
    counters.close()
    assert counters.fds == {}


def test_events_the_host_cannot_count_say_why_and_leave_nothing_open(busy):
    counters = perf.Counters()
    if not os.path.exists(perf.CQM_TYPE):
        with pytest.raises(perf.PerfError) as exc:
            counters.enable(busy.pid, ["task_clock", "cmt"])
        assert exc.value.strerror.startswith("perf event 'cmt': the kernel has no intel_cqm perf PMU")
        assert counters.fds == {}                   # task_clock, opened first, closed again
    with pytest.raises(perf.PerfError) as exc:
        perf.open_event("bogus", busy.pid)
    assert "unknown perf event 'bogus'" in exc.value.strerror
    with pytest.raises(perf.PerfError) as exc:
        perf.open_event("task_clock", 999999999)
    assert "is gone" in exc.value.strerror
