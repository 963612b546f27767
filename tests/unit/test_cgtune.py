"""vsh.kvm.cgtune against fake cgroup trees in a temporary directory: which v1 and v2 files
memtune, blkiotune and numatune use, their units (KiB in, bytes in the files), "unlimited",
the order of the v1 memory writes, and where QEMU's group is found (/proc/PID/cgroup)."""

from __future__ import annotations

import os

import pytest

from vsh.kvm import cgtune

V1_MAX = (2 ** 63 - 1) // os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PAGE_SIZE")


def v1_memory(tmp_path):
    group = tmp_path / "memory" / "vsh.slice" / "qemu-7"
    group.mkdir(parents=True)
    for leaf in ("memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes"):
        (group / leaf).write_text(f"{V1_MAX}\n")
    return ("v1", str(group)), group


def test_v1_memory_unlimited_reads_none_and_kib_are_written_as_bytes(tmp_path):
    group, d = v1_memory(tmp_path)
    assert cgtune.memory(group) == {"hard_limit": None, "soft_limit": None, "swap_hard_limit": None}
    cgtune.set_memory(group, {"hard_limit": 262144, "soft_limit": 131072, "swap_hard_limit": 524288})
    assert (d / "memory.limit_in_bytes").read_text() == str(262144 * 1024)
    assert (d / "memory.soft_limit_in_bytes").read_text() == str(131072 * 1024)
    assert (d / "memory.memsw.limit_in_bytes").read_text() == str(524288 * 1024)   # memory + swap, as libvirt
    assert cgtune.memory(group) == {"hard_limit": 262144, "soft_limit": 131072, "swap_hard_limit": 524288}
    cgtune.set_memory(group, {"soft_limit": None})
    assert (d / "memory.soft_limit_in_bytes").read_text() == "-1"


def test_v1_memory_writes_keep_the_limit_below_memsw_at_every_step(tmp_path, monkeypatch):
    group, d = v1_memory(tmp_path)
    cgtune.set_memory(group, {"hard_limit": 1024, "swap_hard_limit": 2048})
    order = []
    real = cgtune.write_file

    def kernel(path, text):         # the kernel's rule: limit_in_bytes <= memsw.limit_in_bytes
        order.append(os.path.basename(path))
        real(path, text)
        limit, memsw = ((d / leaf).read_text() for leaf in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"))
        as_int = [V1_MAX if v == "-1" else int(v) for v in (limit, memsw)]
        assert as_int[0] <= as_int[1], order

    monkeypatch.setattr(cgtune, "write_file", kernel)
    cgtune.set_memory(group, {"hard_limit": 4096, "swap_hard_limit": 8192})     # up: memsw first
    assert order == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    order.clear()
    cgtune.set_memory(group, {"hard_limit": 512, "swap_hard_limit": 1024})      # down: limit first
    assert order == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    order.clear()
    cgtune.set_memory(group, {"hard_limit": None, "swap_hard_limit": None})
    assert order == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    assert cgtune.memory(group)["hard_limit"] is None


def test_v2_memory_uses_max_high_and_swap_max_and_swap_is_added_to_memory(tmp_path):
    d = tmp_path / "qemu-7"
    d.mkdir()
    for leaf in ("memory.max", "memory.high", "memory.swap.max"):
        (d / leaf).write_text("max\n")
    group = ("v2", str(d))
    cgtune.set_memory(group, {"hard_limit": 1048576, "swap_hard_limit": 1572864})
    assert (d / "memory.max").read_text() == str(1048576 * 1024)
    assert (d / "memory.swap.max").read_text() == str(524288 * 1024)          # swap alone on v2
    assert cgtune.memory(group) == {"hard_limit": 1048576, "soft_limit": None, "swap_hard_limit": 1572864}


def test_a_host_without_swap_accounting_reads_no_swap_limit_and_refuses_one_naming_the_file(tmp_path):
    group, d = v1_memory(tmp_path)
    (d / "memory.memsw.limit_in_bytes").unlink()
    assert cgtune.memory(group)["swap_hard_limit"] is None
    (d / "memory.memsw.limit_in_bytes").mkdir()       # a file that cannot be written (cgroupfs makes none)
    with pytest.raises(cgtune.CgroupError) as exc:
        cgtune.set_memory(group, {"hard_limit": 1024, "swap_hard_limit": 2048})
    assert exc.value.filename == str(d / "memory.memsw.limit_in_bytes")


def test_v1_blkio_weight_throttles_and_a_host_without_cfq_or_bfq(tmp_path):
    d = tmp_path / "blkio"
    d.mkdir()
    group = ("v1", str(d))
    assert cgtune.blkio_weight(group) is None
    with pytest.raises(cgtune.CgroupError) as exc:
        cgtune.set_blkio(group, weight=500)
    assert "valid only for bfq or cfq scheduler" in exc.value.strerror
    cgtune.set_blkio(group, devices={"device_read_bytes_sec": [("8:0", 1048576)],
                                     "device_write_iops_sec": [("8:0", 0)]})
    assert (d / "blkio.throttle.read_bps_device").read_text() == "8:0 1048576"
    assert (d / "blkio.throttle.write_iops_device").read_text() == "8:0 0"      # 0 removes the line
    (d / "blkio.weight").write_text("500\n")                                  # CFQ
    (d / "blkio.weight_device").write_text("")
    assert cgtune.blkio_weight(group) == 500
    cgtune.set_blkio(group, weight=300, devices={"device_weight": [("8:0", 200)]})
    assert (d / "blkio.weight").read_text() == "300"
    assert (d / "blkio.weight_device").read_text() == "8:0 200"
    (d / "blkio.bfq.weight").write_text("default 100\n")                      # BFQ wins, as in libvirt
    assert cgtune.blkio_weight(group) == 100


def test_v2_io_weight_and_max(tmp_path):
    d = tmp_path / "io"
    d.mkdir()
    (d / "io.weight").write_text("default 100\n")
    group = ("v2", str(d))
    cgtune.set_blkio(group, weight=700, devices={"device_read_iops_sec": [("8:0", 0)],
                                                 "device_write_bytes_sec": [("8:0", 4096)]})
    assert (d / "io.weight").read_text() == "default 700"
    assert (d / "io.max").read_text() == "8:0 wbps=4096"


def test_cpuset_mems(tmp_path):
    d = tmp_path / "cpuset"
    d.mkdir()
    (d / "cpuset.mems").write_text("0-1\n")
    cgtune.set_mems(("v1", str(d)), "1")
    assert cgtune.mems(("v1", str(d))) == "1"
    (d / "cpuset.mems").write_text("\n")
    (d / "cpuset.mems.effective").write_text("0\n")
    assert cgtune.mems(("v2", str(d))) == "0"


def fake_v1_host(tmp_path, pid: int, path: str, procs: str):
    """A v1 memory hierarchy at tmp_path/memory and a /proc with ``pid`` at hierarchy ``path``."""
    info = tmp_path / "mountinfo"
    info.write_text(f"35 31 0:32 / {tmp_path / 'memory'} rw - cgroup cgroup rw,memory\n")
    proc = tmp_path / "proc" / str(pid)
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text(f"4:memory:{path}\n3:cpuset:/\n0::/\n")
    group = tmp_path / "memory" / path.lstrip("/")
    group.mkdir(parents=True, exist_ok=True)
    (group / "cgroup.procs").write_text(procs)
    (group / "memory.limit_in_bytes").write_text(f"{V1_MAX}\n")
    return str(info), str(tmp_path / "proc"), group


def test_find_takes_qemus_group_from_its_proc_cgroup(tmp_path):
    info, proc, group = fake_v1_host(tmp_path, 77, "/ctr/vsh.slice/qemu-77", "77\n")
    assert cgtune.find(77, "memory", mountinfo=info, proc=proc) == ("v1", str(group))
    with pytest.raises(cgtune.CgroupError) as exc:
        cgtune.find(77, "blkio", mountinfo=info, proc=proc)
    assert "no cgroup hierarchy with the blkio controller" in exc.value.strerror


def test_find_refuses_a_group_qemu_shares(tmp_path):
    info, proc, _ = fake_v1_host(tmp_path, 78, "/ctr", "1\n78\n")
    with pytest.raises(cgtune.CgroupError) as exc:
        cgtune.find(78, "memory", mountinfo=info, proc=proc)
    assert "shares its memory cgroup /ctr with other processes" in exc.value.strerror


def test_a_refused_memory_write_puts_back_what_was_written_before_it(tmp_path):
    group, d = v1_memory(tmp_path)
    cgtune.set_memory(group, {"hard_limit": 1024, "swap_hard_limit": 2048})
    (d / "memory.memsw.limit_in_bytes").unlink()
    (d / "memory.memsw.limit_in_bytes").mkdir()                 # refuses the write
    with pytest.raises(cgtune.CgroupError):
        cgtune.set_memory(group, {"hard_limit": 512, "swap_hard_limit": 1024})     # limit first, then memsw
    assert (d / "memory.limit_in_bytes").read_text() == str(1024 * 1024)
