"""vsh.kvm.cgroup against fake hierarchies in a temporary directory: where the groups go on
cgroup v1 and v2 hosts, mountinfo's escapes, and the sweep of groups whose QEMU died."""

from __future__ import annotations

import os

import pytest

from vsh.kvm import cgroup

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root places QEMU in a cgroup")


def mountinfo(tmp_path, lines):
    path = tmp_path / "mountinfo"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_a_hybrid_host_uses_v1_because_its_cgroup2_mount_has_no_cpu(tmp_path):
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("hugetlb\n")
    info = mountinfo(tmp_path, [
        f"41 31 0:38 / {unified} rw,relatime - cgroup2 cgroup2 rw",
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
        "33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpuacct,cpu",
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
    ])
    unified_point, v1 = cgroup.mounts(info)
    assert unified_point is None
    assert v1 == {"cpu": ("/sys/fs/cgroup/cpu", "/"), "cpuacct": ("/sys/fs/cgroup/cpu,cpuacct", "/"),
                  "memory": ("/sys/fs/cgroup/memory", "/")}


def test_a_v2_host_uses_its_unified_mount_and_escapes_are_undone(tmp_path):
    top = tmp_path / "with space"
    top.mkdir()
    (top / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    escaped = str(top).replace(" ", "\\040")
    info = mountinfo(tmp_path, [f"30 23 0:26 / {escaped} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate"])
    assert cgroup.mounts(info) == (str(top), {})
    assert cgroup._bases(info) == [("v2", str(top))]


def test_a_bind_mounted_v1_hierarchy_maps_paths_below_its_root():
    assert cgroup.under("/sys/fs/cgroup/cpu", "/", "/user/1") == "/sys/fs/cgroup/cpu/user/1"
    assert cgroup.under("/sys/fs/cgroup/cpu", "/docker/abc", "/docker/abc/inner") == "/sys/fs/cgroup/cpu/inner"
    assert cgroup.under("/sys/fs/cgroup/cpu", "/docker/abc", "/docker/abc") == "/sys/fs/cgroup/cpu"


def fake_v2(tmp_path, controllers: str = "cpu"):
    """A fake cgroup v2 top in tmp_path/cg offering ``controllers``; (its path, a mountinfo naming it)."""
    top = tmp_path / "cg"
    top.mkdir(exist_ok=True)
    (top / "cgroup.controllers").write_text(controllers + "\n")
    return top, mountinfo(tmp_path, [f"30 23 0:26 / {top} rw - cgroup2 cgroup2 rw"])


@needs_root
def test_place_makes_the_slice_and_the_group_and_moves_the_pid(tmp_path):
    top, info = fake_v2(tmp_path, "cpu memory io pids")
    (top / "cgroup.subtree_control").write_text("")
    made = cgroup.place(4242, mountinfo=info)
    assert made == [str(top / "vsh.slice" / "qemu-4242")]
    assert (top / "vsh.slice" / "qemu-4242" / "cgroup.procs").read_text() == "4242"
    assert (top / "cgroup.subtree_control").read_text().startswith("+")     # controllers asked for


@needs_root
def test_place_sweeps_groups_of_dead_qemus_and_keeps_live_ones(tmp_path):
    top, info = fake_v2(tmp_path)
    (top / "vsh.slice" / "qemu-999999999").mkdir(parents=True)        # no such pid
    (top / "vsh.slice" / f"qemu-{os.getpid()}").mkdir()                 # alive
    cgroup.place(4243, mountinfo=info)
    assert sorted(os.listdir(top / "vsh.slice")) == sorted([f"qemu-{os.getpid()}", "qemu-4243"])


@needs_root
def test_a_hierarchy_that_refuses_gives_an_error_naming_it(tmp_path):
    top, info = fake_v2(tmp_path)
    (top / "vsh.slice").write_text("a file where the slice should be")
    with pytest.raises(cgroup.CgroupError) as exc:
        cgroup.place(4244, mountinfo=info)
    assert "cannot put QEMU in a cgroup of its own" in exc.value.strerror


def test_remove_ignores_a_gone_group_and_reports_a_busy_one(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "cgroup.procs").write_text("1\n")       # a plain directory with a file: rmdir fails
    assert cgroup.remove([str(tmp_path / "gone")]) == []
    warnings = cgroup.remove([str(busy)])
    assert len(warnings) == 1 and str(busy) in warnings[0]


def fake_v1(tmp_path, refusing: str | None = None):
    """Fake v1 cpu, cpuset and memory hierarchies (the one named ``refusing`` is a plain file:
    nothing can be made in it); a mountinfo naming them."""
    lines = []
    for n, ctl in enumerate(("cpu", "cpuset", "memory")):
        point = tmp_path / ctl
        if ctl == refusing:
            point.write_text("")
        else:
            point.mkdir()
        lines.append(f"{32 + n} 31 0:{29 + n} / {point} rw - cgroup cgroup rw,{ctl}")
    return mountinfo(tmp_path, lines)


def _in_own_group(tmp_path, ctl: str) -> str:
    return cgroup.under(str(tmp_path / ctl), "/", cgroup.proc_paths("self").get(ctl, "/"))


@needs_root
def test_v1_cpuset_groups_get_their_parents_cpus_and_mems_before_qemu_joins(tmp_path):
    info = fake_v1(tmp_path)
    base = _in_own_group(tmp_path, "cpuset")
    os.makedirs(base, exist_ok=True)
    for leaf, value in (("cpuset.cpus", "0-1\n"), ("cpuset.mems", "0\n"), ("cpuset.memory_migrate", "0\n")):
        with open(os.path.join(base, leaf), "w") as fh:
            fh.write(value)
        for below in ("vsh.slice", "vsh.slice/qemu-4245"):      # what the kernel makes: empty
            os.makedirs(os.path.join(base, below), exist_ok=True)
            open(os.path.join(base, below, leaf), "w").close()
    made = cgroup.place(4245, mountinfo=info)
    group = os.path.join(base, "vsh.slice", "qemu-4245")
    assert group in made and len(made) == 3
    assert [open(os.path.join(group, f)).read() for f in ("cpuset.cpus", "cpuset.mems", "cpuset.memory_migrate")] \
        == ["0-1", "0", "1"]
    assert open(os.path.join(group, "cgroup.procs")).read() == "4245"


@needs_root
def test_v1_a_memory_hierarchy_that_refuses_is_left_out_with_a_warning_but_cpu_is_needed(tmp_path):
    warnings = []
    made = cgroup.place(4246, mountinfo=fake_v1(tmp_path, refusing="memory"), warn=warnings.append)
    assert len(made) == 2 and not any(str(tmp_path / "memory") in d for d in made)
    assert len(warnings) == 1 and warnings[0].startswith(f"QEMU is left out of the cgroup hierarchy at {tmp_path}/memory")
    again = tmp_path / "again"
    again.mkdir()
    with pytest.raises(cgroup.CgroupError) as exc:
        cgroup.place(4247, mountinfo=fake_v1(again, refusing="cpu"))
    assert "cannot put QEMU in a cgroup of its own" in exc.value.strerror
