"""Reliability campaigns for the store (issue 15 §5); no guest runs.

* kill -9 of vsh at a random moment of define (a new domain), edit, snapshot-create-as
  (an internal qcow2 snapshot, offline) and undefine: afterwards ``list --all`` and
  ``dumpxml`` of every domain work, each domain is wholly the old or wholly the new
  definition, and the snapshots vsh lists are exactly the qcow2's internal snapshots.
* concurrent writers: two vsh processes change different fields of one domain at once
  (both changes survive), define different domains at once (both exist), and define one
  new name with two UUIDs at once (one wins, the other gets ``error: …``).
* the UUID index (docs/store.md): kill -9 at a random moment of define, undefine, domrename
  and of the index's rebuild; afterwards every domain is found by its UUID, a UUID a config
  holds is refused to another name, one no config holds is accepted, and a rename is whole.

Bounded by default (each campaign ≤ ~40 s); ``--long`` runs thousands of iterations.
Each prints its figures (tried / held) and fails on the first miss.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import vmguest as _vmguest      # tests/ is on the path (conftest.py's directory)

BUDGET_S = 40.0
LONG_ITERATIONS = 2000


def domain_xml(name: str, disk: Path, desc: str = "v0", uid: str | None = None, mem_kib: int = 131072) -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>
  {f'<uuid>{uid}</uuid>' if uid else ''}
  <description>{desc}</description>
  <memory unit='KiB'>{mem_kib}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>
      <target dev='vda' bus='virtio'/></disk>
  </devices>
</domain>
"""


class Store:
    def __init__(self, base: Path):
        self.base = base
        self.store = base / "store"
        self.env = _vmguest.store_env(base, self.store)

    def argv(self, *args) -> list[str]:
        return [sys.executable, "-m", "vsh", *map(str, args)]

    def vsh(self, *args, env=None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.argv(*args), env=env or self.env, capture_output=True, text=True, timeout=120)
        if check:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def spawn(self, *args, env=None) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), env=env or self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def killed(self, delay: float, *args, env=None) -> None:
        """Run vsh and SIGKILL it after ``delay`` seconds (if it has not finished)."""
        proc = self.spawn(*args, env=env)
        try:
            proc.wait(delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)

    def image(self, name: str) -> Path:
        path = self.base / f"{name}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True, timeout=60)
        return path

    def defined(self, name: str, **xml_args) -> tuple[Path, Path]:
        """A new qcow2 image and a domain ``name`` defined on it: (the image, the XML file)."""
        disk = self.image(name)
        xml = self.base / f"{name}.xml"
        xml.write_text(domain_xml(name, disk, **xml_args))
        self.vsh("define", xml)
        return disk, xml

    def names(self) -> list[str]:
        return [n for n in self.vsh("list", "--all", "--name").stdout.splitlines() if n.strip()]

    def xml(self, name: str):
        from vsh.core.xml import parse

        return parse(self.vsh("dumpxml", name).stdout.encode(), "dumpxml")

    def consistent(self, *only: str) -> dict:
        """``list --all`` works and every listed domain (of ``only``, when given) dumps as a
        whole definition; name → its parsed XML."""
        out = {}
        for name in self.names():
            if only and name not in only:
                continue
            root = self.xml(name)
            assert root.findtext("name") == name and root.find("devices/disk/source") is not None, name
            out[name] = root
        return out

    def snapshots_match(self, name: str, disk: Path) -> None:
        listed = set(self.vsh("snapshot-list", name, "--name").stdout.split())
        for snap in listed:
            self.vsh("snapshot-dumpxml", name, snap)
        info = subprocess.run(["qemu-img", "snapshot", "-l", "-U", str(disk)], capture_output=True,
                              text=True, timeout=60, check=True).stdout.splitlines()
        tags = {line.split()[1] for line in info[2:] if len(line.split()) > 1}
        assert listed == tags, (listed, tags)


def duration(store: Store, *args, env=None) -> float:
    t0 = time.monotonic()
    store.vsh(*args, env=env)
    return time.monotonic() - t0


def budget(long_mode: bool):
    """Iteration numbers until the campaign's budget is spent."""
    t0 = time.monotonic()
    n = 0
    while (n < LONG_ITERATIONS) if long_mode else (time.monotonic() - t0 < BUDGET_S / 4):
        yield n
        n += 1


def report(what: str, tried: int, held: int) -> None:
    print(f"\n{what}: tried {tried}, held {held}")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("storekills"))


def test_kill_during_define(store, long_mode):
    disk = store.image("defs")
    xml = store.base / "new.xml"
    xml.write_text(domain_xml("dtime", disk))
    d = duration(store, "define", xml)
    store.vsh("undefine", "dtime")
    tried = 0
    for n in budget(long_mode):
        name = f"d{n}"
        xml.write_text(domain_xml(name, disk, desc=f"new{n}"))
        store.killed(random.uniform(0, d * 1.2), "define", xml)
        doms = store.consistent(*(() if n % 50 == 49 else (name,)))
        if name in doms:
            assert doms[name].findtext("description") == f"new{n}"
        tried += 1
    report("kill -9 during define", tried, tried)


def test_kill_during_edit(store, long_mode):
    store.defined("ed", desc="e0")
    d = duration(store, "edit", "ed", env=dict(store.env, EDITOR="sed -i -e s/e0/e0/"))
    tried, current = 0, "e0"
    for n in budget(long_mode):
        new = f"e{n + 1}"
        env = dict(store.env, EDITOR=f"sed -i -e 's|<description>{current}<|<description>{new}<|'")
        store.killed(random.uniform(0, d * 1.2), "edit", "ed", env=env)
        got = store.consistent("ed")["ed"].findtext("description")
        assert got in (current, new), (got, current, new)
        current = got
        tried += 1
    report("kill -9 during edit", tried, tried)


def test_kill_during_snapshot_create(store, long_mode):
    disk, _xml = store.defined("sn")
    d = duration(store, "snapshot-create-as", "sn", "first")
    tried = 0
    for n in budget(long_mode):
        if n and n % 20 == 0:       # keep the image small: delete what is there
            for snap in store.vsh("snapshot-list", "sn", "--name").stdout.split():
                store.vsh("snapshot-delete", "sn", snap)
        store.killed(random.uniform(0, d * 1.2), "snapshot-create-as", "sn", f"s{n}")
        store.consistent("sn")
        store.snapshots_match("sn", disk)
        tried += 1
    report("kill -9 during snapshot-create-as", tried, tried)


def test_kill_during_undefine(store, long_mode):
    disk, xml = store.defined("utime")
    d = duration(store, "undefine", "utime")
    tried = 0
    for n in budget(long_mode):
        name = f"u{n}"
        xml.write_text(domain_xml(name, disk, desc=f"gone{n}"))
        store.vsh("define", xml)
        store.killed(random.uniform(0, d * 1.2), "undefine", name)
        doms = store.consistent(name)
        if name in doms:
            assert doms[name].findtext("description") == f"gone{n}"
            store.vsh("undefine", name)
        tried += 1
    report("kill -9 during undefine", tried, tried)


def test_concurrent_writers_lose_no_update(store, long_mode):
    disk, _xml = store.defined("cw", mem_kib=262144)
    tried = 0
    for n in budget(long_mode):
        title, mem = f"t{n}", 65536 + 1024 * (n % 100)
        a = store.spawn("desc", "cw", "--config", "--title", title)
        b = store.spawn("setmem", "cw", f"{mem}K", "--config")
        for p in (a, b):
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, (out, err)
        root = store.consistent("cw")["cw"]
        assert root.findtext("title") == title and root.findtext("currentMemory") == str(mem), n
        # two new domains at once: both are there
        xa, xb = store.base / "ca.xml", store.base / "cb.xml"
        xa.write_text(domain_xml(f"pa{n}", disk))
        xb.write_text(domain_xml(f"pb{n}", disk))
        procs = [store.spawn("define", xa), store.spawn("define", xb)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, (out, err)
        assert {f"pa{n}", f"pb{n}"} <= set(store.names())
        # one new name, two UUIDs: one wins, the other is told
        u1, u2 = str(uuid.uuid4()), str(uuid.uuid4())
        xa.write_text(domain_xml(f"same{n}", disk, uid=u1))
        xb.write_text(domain_xml(f"same{n}", disk, uid=u2))
        procs = [store.spawn("define", xa), store.spawn("define", xb)]
        outs = [p.communicate(timeout=120) for p in procs]
        results = [(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]
        ok = [i for i, (rc, _o, _e) in enumerate(results) if rc == 0]
        assert len(ok) == 1, results
        loser = results[1 - ok[0]]
        assert loser[2].startswith("error: ") and "already exists" in loser[2], loser
        assert store.xml(f"same{n}").findtext("uuid") == (u1, u2)[ok[0]]
        for name in (f"pa{n}", f"pb{n}", f"same{n}"):
            store.vsh("undefine", name)
        tried += 1
    report("concurrent writers (field edits, two defines, one name twice)", tried, tried)


def test_kill_leaves_the_uuid_index_true(store, long_mode):
    """kill -9 at a random moment of define, undefine or rename (each under the UUID index):
    afterwards every domain is found by its UUID, a UUID a config holds is refused to another
    name, and a UUID no config holds is free (the index never lies, whatever it had to rebuild)."""
    disk = store.image("ix")
    xml = store.base / "ix.xml"
    xml.write_text(domain_xml("ixtime", disk))
    d = max(duration(store, "define", xml), duration(store, "domrename", "ixtime", "ixtime2"),
            duration(store, "undefine", "ixtime2"))
    held: dict[str, str] = {}       # uuid -> the name vsh lists it under (or absent)
    tried = 0
    for n in budget(long_mode):
        action = ("define", "undefine", "domrename")[n % 3] if held else "define"
        if action == "define":
            uid, name = str(uuid.uuid4()), f"ix{n}"
            xml.write_text(domain_xml(name, disk, uid=uid))
            store.killed(random.uniform(0, d * 1.2), "define", xml)
        else:
            uid = random.choice(sorted(held))
            name = held[uid]
            args = ("undefine", name) if action == "undefine" else ("domrename", name, f"ix{n}")
            store.killed(random.uniform(0, d * 1.2), *args)
        listed = set(store.names())
        held = {}
        for each in [name for name in listed if name.startswith("ix")]:
            held[store.vsh("domuuid", each).stdout.strip()] = each
        old_new = {name, f"ix{n}"}
        assert len(listed & old_new) <= 1, listed & old_new        # a rename is whole, or not at all
        for u, each in held.items():
            assert store.vsh("domname", u).stdout.strip() == each
        probe = store.base / "probe.xml"
        probe.write_text(domain_xml("probe", disk, uid=uid))
        res = store.vsh("define", probe, check=False)
        if uid in held:
            assert res.returncode == 1 and f"is already defined with uuid {uid}" in res.stderr, res
        else:
            assert res.returncode == 0, res
            store.vsh("undefine", "probe")
        tried += 1
    report("kill -9 during define / undefine / domrename: the UUID index told the truth", tried, tried)


def test_kill_during_index_rebuild(store, long_mode):
    """kill -9 while the UUID index is rebuilt from 200 configs (its stamp removed, as a killed
    writer leaves it): afterwards every domain is still found by its UUID."""
    disk = store.image("rb")
    lines = []
    for i in range(200):
        path = store.base / f"rb{i}.xml"
        path.write_text(domain_xml(f"rb{i}", disk, uid=str(uuid.uuid4())))
        lines.append(f"define {path}\n")
    (store.base / "rb.txt").write_text("".join(lines))
    store.vsh("-q", "-f", store.base / "rb.txt")
    listed = (line.split() for line in store.vsh("list", "--all", "--uuid", "--name").stdout.splitlines())
    uuids = {fields[0]: fields[1] for fields in listed if len(fields) == 2 and fields[1].startswith("rb")}
    assert len(uuids) == 200
    stamp = store.store / "config" / ".index" / ".stamp"
    probe = next(iter(uuids))
    stamp.unlink()
    d = duration(store, "domname", probe)
    tried = 0
    for n in budget(long_mode):
        stamp.unlink(missing_ok=True)
        store.killed(random.uniform(0, d * 1.2), "domname", probe)
        for u in random.sample(sorted(uuids), 5):
            assert store.vsh("domname", u).stdout.strip() == uuids[u]
        tried += 1
    (store.base / "rb.txt").write_text("".join(f"undefine {name}\n" for name in uuids.values()))
    store.vsh("-q", "-f", store.base / "rb.txt")
    report("kill -9 during the UUID index's rebuild (200 configs)", tried, tried)
