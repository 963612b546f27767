"""Guest NUMA: ``<cpu><numa><cell>`` → one memory backend and one ``-numa node`` per cell, and
``-numa dist`` for ``<distances>``, as libvirt's qemu driver builds them.  The guest's memory is
the sum of its cells (libvirt recomputes ``<memory>`` from them on define)."""

from __future__ import annotations

from vsh.core.domain import parse_cpuset
from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import given, number, opts, size_bytes

#: <memoryBacking><source type> -> QEMU's memory backend (file-backed memory needs a memory_backing_dir).
BACKENDS = {"anonymous": "memory-backend-ram", "memfd": "memory-backend-memfd"}


def total_bytes(dom) -> int:
    """The guest memory in bytes: the sum of the NUMA cells."""
    return sum(cell_bytes(c, "<numa><cell id='%s'>" % c.id) for c in dom.numa_cells)


def cell_bytes(cell, what: str) -> int:
    if cell.memory is None:
        raise InvalidArgument("%s has no memory" % what)
    return size_bytes(cell.memory, cell.unit, what + " memory")


def _backend(b: Builder) -> tuple[str, bool | None]:
    """The memory backend type and the domain-wide ``share`` setting from <memoryBacking>."""
    stype = given(b.dom.memory_source_type, "anonymous")
    backend = BACKENDS.get(stype)
    if backend is None:
        raise Unsupported("<memoryBacking><source type='%s'> is not supported (anonymous, memfd)" % stype)
    mode = b.dom.memory_access_mode
    if mode not in (None, "shared", "private"):
        raise InvalidArgument("<memoryBacking><access mode='%s'> is not a mode (shared, private)" % mode)
    return backend, (None if mode is None else mode == "shared")


def numa(b: Builder) -> None:
    """The memory backends, -numa node and -numa dist options of the guest's NUMA cells."""
    cell_list = b.dom.numa_cells
    if not cell_list:
        return
    vcpus = number((b.dom.raw("vcpus") or "").strip() or None, "<vcpu>", 1)
    backend, share = _backend(b)
    seen_cpus: set[int] = set()
    for i, cell in enumerate(cell_list):
        what = "<numa><cell id='%s'>" % given(cell.id, i)
        cid = number(cell.id, what + " id", i)
        if cid != i:
            raise InvalidArgument("%s: cell ids must be 0, 1, ... in document order (expected %d)" % (what, i))
        cpus = parse_cpuset(cell.cpus) if cell.cpus else set()
        if any(c >= vcpus for c in cpus):
            raise InvalidArgument("%s: CPU %d is beyond <vcpu> %d" % (what, max(cpus), vcpus))
        if cpus & seen_cpus:
            raise InvalidArgument("%s: CPUs %s are in more than one cell"
                                  % (what, ",".join(map(str, sorted(cpus & seen_cpus)))))
        seen_cpus |= cpus
        access = cell.mem_access
        if access not in (None, "shared", "private"):
            raise InvalidArgument("%s: memAccess '%s' is not a mode (shared, private)" % (what, access))
        cell_share = share if access is None else access == "shared"
        discard = cell.discard
        pairs: list[tuple[str, object]] = [("id", "ram-node%d" % i),
                                           ("size", cell_bytes(cell, what))]
        if cell_share is not None:
            pairs.append(("share", cell_share))
        if discard is not None:
            pairs.append(("discard-data", discard == "yes"))
        pairs += _host_policy(b.dom, i)
        b.add("-object", opts(backend, *pairs))
        node: list[tuple[str, object]] = [("nodeid", i)]
        node += [("cpus", r) for r in _ranges(cpus)]
        node.append(("memdev", "ram-node%d" % i))
        b.add("-numa", opts("node", *node))
    for i, cell in enumerate(cell_list):
        for sib_id, sib_value in cell.distances:
            dst = number(sib_id, "<numa><cell id='%d'><sibling> id" % i)
            if not 0 <= dst < len(cell_list):
                raise InvalidArgument("<numa><cell id='%d'><sibling id='%d'>: no such cell" % (i, dst))
            val = number(sib_value, "<numa><cell id='%d'><sibling> value" % i)
            if not (10 <= val <= 255) or (dst == i) != (val == 10):
                raise InvalidArgument("<numa><cell id='%d'><sibling id='%d' value='%d'>: a distance is 10 to "
                                      "the cell itself and 11-255 to the others" % (i, dst, val))
            b.add("-numa", "dist,src=%d,dst=%d,val=%d" % (i, dst, val))


#: numatune modes → QEMU memory backend policies ('restrictive' leaves the backend alone)
POLICIES = {"strict": "bind", "preferred": "preferred", "interleave": "interleave"}


def _host_policy(dom, cell: int) -> list[tuple[str, object]]:
    """``host-nodes`` and ``policy`` of guest cell ``cell``'s backend, as libvirt writes them: its
    ``<numatune><memnode cellid>``, else the domain's ``<numatune><memory>``."""
    el = dom.numatune_for(cell)
    if el is None or not el.nodeset or el.placement == "auto":
        return []
    mode = el.mode or "strict"
    if mode not in POLICIES:
        if mode == "restrictive":
            return []
        raise InvalidArgument("<numatune>: unsupported mode '%s' (strict, preferred, interleave, restrictive)" % mode)
    nodes = parse_cpuset(el.nodeset)
    return [("host-nodes", r) for r in _ranges(nodes)] + [("policy", POLICIES[mode])]


def _ranges(cpus: set[int]) -> list[str]:
    """QEMU's cpus= values for a set of vCPUs: one ``first-last`` (or ``n``) per run."""
    out: list[str] = []
    for c in sorted(cpus):
        if out and int(out[-1].rpartition("-")[2]) == c - 1:
            out[-1] = "%s-%d" % (out[-1].partition("-")[0], c)
        else:
            out.append(str(c))
    return out
