"""The local driver: memory, block I/O and NUMA tunables and perf events (memtune, blkiotune,
numatune, perf), a part of :class:`vsh.api.local.tuning.LocalDomainTuning`.

The definitions keep libvirt's ``<memtune>``, ``<blkiotune>``, ``<numatune>`` and ``<perf>``.
Live values are the files of the cgroups that hold QEMU alone, as libvirt's QEMU driver uses
them: on cgroup v1 memory.limit_in_bytes, memory.soft_limit_in_bytes,
memory.memsw.limit_in_bytes, blkio.weight (or blkio.bfq.weight), blkio.weight_device,
blkio.throttle.*_device and cpuset.mems; on v2 memory.max, memory.high, memory.swap.max,
io.weight, io.max and cpuset.mems (the mapping and the units: :mod:`vsh.kvm.cgtune`).  Those
are the groups vsh makes for QEMU when it runs as root (:mod:`vsh.kvm.cgroup`); where QEMU has
none such the live calls say why (the ``_cgroup`` check of the tuning handle).  The live XML
follows each change.  Perf counters on a running QEMU are opened and closed by its supervisor,
which holds them (:mod:`vsh.kvm.perf`); an event the host cannot count is refused with why.
"""

from __future__ import annotations

from vsh.api.tuning import BLKIO_DEVICE_PARAMS, MEMTUNE_PARAMS, NUMA_MODES, PERF_EVENTS
from vsh.core.errors import InvalidArgument, OperationInvalid, Unsupported, VshError

_MEM_NOT_MOUNTED = "cgroup memory controller is not mounted"
_BLKIO_NOT_MOUNTED = "blkio cgroup isn't mounted"
_CPUSET_NOT_MOUNTED = "cgroup cpuset controller is not mounted"


def parse_device_list(name: str, text: str) -> list[tuple[str, int]]:
    """virsh's ``/dev/sda,500,/dev/sdb,300`` → [(path, value)]."""
    parts = text.split(",") if text else []
    if len(parts) % 2:
        raise InvalidArgument(f"invalid argument: unable to parse blkio device '{name}' '{text}'")
    out = []
    for path, value in zip(parts[::2], parts[1::2]):
        if not path.startswith("/") or not value.isdigit():
            raise InvalidArgument(f"invalid argument: unable to parse blkio device '{name}' '{text}'")
        out.append((path, int(value)))
    return out


def _setting(do) -> None:
    """Run ``do()``, a change of cgroup files: a refusal is libvirt's error, naming the file."""
    from vsh.kvm.cgtune import CgroupError

    try:
        do()
    except CgroupError as exc:
        if exc.filename:
            raise VshError(f"Unable to write to '{exc.filename}': {exc.strerror}") from None
        raise OperationInvalid(f"Requested operation is not valid: {exc.strerror}") from None


class LocalResources:
    """Mixed into :class:`~vsh.api.local.tuning.LocalDomainTuning` (its ``_which``, ``_def``,
    ``_change``, ``_record_live`` and ``_cgroup``)."""

    # -- memtune -----------------------------------------------------------------------------------------

    def memory_parameters(self, live=False, config=False, current=False):
        ref, do_live, _ = self._which(live, config, current)
        if do_live:
            from vsh.kvm import cgtune

            return cgtune.memory(self._cgroup(ref, "memory", _MEM_NOT_MOUNTED))
        d = self._def(ref, False)
        out = {}
        for name in MEMTUNE_PARAMS[:3]:
            text = d.node.findtext(f"./memtune/{name}")
            out[name] = int(text) if text and text.strip().isdigit() else None
        return out

    def set_memory_parameters(self, params, live=False, config=False, current=False):
        from vsh.core.xmlobject import ensure

        ref, do_live, do_config = self._which(live, config, current, setting=True)
        if "min_guarantee" in params:
            raise Unsupported("unsupported configuration: min_guarantee is an ESX setting; QEMU has none")
        for name in params:
            if name not in MEMTUNE_PARAMS:
                raise InvalidArgument(f"invalid argument: parameter '{name}' not supported")
        for do, is_live in ((do_live, True), (do_config, False)):
            if not do:
                continue
            now = self.memory_parameters(live=is_live, config=not is_live)
            now.update(params)
            hard, swap = now.get("hard_limit"), now.get("swap_hard_limit")
            if swap is not None and (hard is None or hard > swap):
                raise InvalidArgument("invalid argument: memory hard_limit tunable value must be lower than or "
                                      "equal to swap_hard_limit")
        if do_live:
            from vsh.kvm import cgtune

            group = self._cgroup(ref, "memory", _MEM_NOT_MOUNTED)
            _setting(lambda: cgtune.set_memory(group, {k: v for k, v in params.items() if k in MEMTUNE_PARAMS[:3]}))

        def change(d):
            for name, value in params.items():
                el = d.node.find(f"./memtune/{name}")
                if value is None:
                    if el is not None:
                        el.getparent().remove(el)
                    continue
                el = ensure(d.node, f"./memtune/{name}")
                el.text = str(value)
                el.set("unit", "KiB")
            tune = d.node.find("memtune")
            if tune is not None:
                if len(tune) == 0:
                    d.node.remove(tune)
                else:
                    tune[:] = sorted(tune, key=lambda el: MEMTUNE_PARAMS.index(el.tag)
                                     if el.tag in MEMTUNE_PARAMS else 9)

        if do_live:
            self._record_live(ref, change)
        if do_config:
            self._change(ref, change)
        return {"live": do_live, "config": do_config}

    # -- blkiotune ---------------------------------------------------------------------------------------

    def blkio_parameters(self, live=False, config=False, current=False):
        ref, do_live, _ = self._which(live, config, current)
        live_weight = None
        if do_live:
            from vsh.kvm import cgtune

            live_weight = cgtune.blkio_weight(self._cgroup(ref, "blkio", _BLKIO_NOT_MOUNTED))
        d = self._def(ref, do_live)
        weight = d.node.findtext("./blkiotune/weight")
        out = {"weight": int(weight) if weight and weight.strip().isdigit() else 0}
        if live_weight is not None:     # the group's (a host without CFQ/BFQ has none: the live XML's)
            out["weight"] = live_weight
        for name in BLKIO_DEVICE_PARAMS:
            leaf = "weight" if name == "device_weight" else name[len("device_"):]
            items = [f"{dev.findtext('path')},{dev.findtext(leaf).strip()}"
                     for dev in d.node.findall("./blkiotune/device") if dev.findtext(leaf)]
            out[name] = ",".join(items)
        return out

    def set_blkio_parameters(self, params, live=False, config=False, current=False):
        from vsh.core.lxmlload import etree

        from vsh.core.xmlobject import ensure

        ref, do_live, do_config = self._which(live, config, current, setting=True)
        lists = {}
        for name, value in params.items():
            if name == "weight":
                if not 100 <= int(value) <= 1000:
                    raise InvalidArgument("invalid argument: out of blkio weight range.")
            elif name in BLKIO_DEVICE_PARAMS:
                lists[name] = parse_device_list(name, value)
                if name == "device_weight" and any(v and not 100 <= v <= 1000 for _, v in lists[name]):
                    raise InvalidArgument("invalid argument: out of blkio weight range.")
            else:
                raise InvalidArgument(f"invalid argument: parameter '{name}' not supported")
        if do_live:
            from vsh.kvm import cgtune

            group = self._cgroup(ref, "blkio", _BLKIO_NOT_MOUNTED)
            from vsh.api.local.starttune import major_minor

            devices = {name: [(major_minor(dev), value) for dev, value in items] for name, items in lists.items()}
            weight = int(params["weight"]) if "weight" in params else None
            _setting(lambda: cgtune.set_blkio(group, weight, devices))

        def change(d):
            if "weight" in params:
                ensure(d.node, "./blkiotune/weight").text = str(int(params["weight"]))
            for name, items in lists.items():
                leaf = "weight" if name == "device_weight" else name[len("device_"):]
                for dev, value in items:
                    found = next((el for el in d.node.findall("./blkiotune/device") if el.findtext("path") == dev),
                                 None)
                    if found is None:
                        if not value:
                            continue
                        found = etree.SubElement(ensure(d.node, "./blkiotune"), "device")
                        etree.SubElement(found, "path").text = dev
                    el = found.find(leaf)
                    if not value:
                        if el is not None:
                            found.remove(el)
                        if len(found) == 1:
                            found.getparent().remove(found)
                        continue
                    if el is None:
                        el = etree.SubElement(found, leaf)
                    el.text = str(value)

        if do_live:
            self._record_live(ref, change)
        if do_config:
            self._change(ref, change)
        return {"live": do_live, "config": do_config}

    # -- numatune ----------------------------------------------------------------------------------------

    def numa_parameters(self, live=False, config=False, current=False):
        ref, do_live, _ = self._which(live, config, current)
        d = self._def(ref, do_live)
        mem = d.node.find("./numatune/memory")
        out = {"numa_mode": (mem.get("mode") if mem is not None else None) or "strict",
               "numa_nodeset": (mem.get("nodeset") if mem is not None else None) or ""}
        if do_live:
            from vsh.kvm import cgtune

            group = self._cgroup(ref, "cpuset", _CPUSET_NOT_MOUNTED)
            if out["numa_mode"] == "restrictive":       # the group's (strict & co. are QEMU's policy)
                out["numa_nodeset"] = cgtune.mems(group) or out["numa_nodeset"]
        return out

    def set_numa_parameters(self, mode=None, nodeset=None, live=False, config=False, current=False):
        from vsh.core.domain import format_cpuset, parse_cpuset
        from vsh.core.xmlobject import ensure

        ref, do_live, do_config = self._which(live, config, current, setting=True)
        if mode is not None and mode not in NUMA_MODES:
            raise InvalidArgument(f"invalid argument: unsupported numatune mode: '{mode}'")
        if nodeset is not None:
            nodes = parse_cpuset(nodeset)
            from vsh.api.local.starttune import host_nodes

            missing = sorted(nodes - host_nodes())
            if missing:
                raise InvalidArgument(f"unsupported configuration: NUMA node {missing[0]} is unavailable")
            nodeset = format_cpuset(nodes)
        if do_live:
            if mode is not None and mode != self.numa_parameters(live=True)["numa_mode"]:
                raise OperationInvalid("Requested operation is not valid: can't change numatune mode for running "
                                       "domain")
            from vsh.kvm import cgtune

            group = self._cgroup(ref, "cpuset", _CPUSET_NOT_MOUNTED)
            if nodeset is not None:
                if self.numa_parameters(live=True)["numa_mode"] != "restrictive":
                    raise OperationInvalid("Requested operation is not valid: change of nodeset for running domain "
                                           "requires restrictive numa mode")
                _setting(lambda: cgtune.set_mems(group, nodeset))

        def change(d):
            mem = ensure(d.node, "./numatune/memory")
            if mode is not None:
                mem.set("mode", mode)
            if nodeset is not None:
                mem.set("nodeset", nodeset)

        if do_live:
            self._record_live(ref, change)
        if do_config:
            self._change(ref, change)
        return {"live": do_live, "config": do_config}

    # -- perf ----------------------------------------------------------------------------------------------

    def perf_events(self, live=False, config=False, current=False):
        ref, do_live, _ = self._which(live, config, current)
        d = self._def(ref, do_live)
        on = {el.get("name") for el in d.node.findall("./perf/event") if el.get("enabled") == "yes"}
        return {name: name in on for name in PERF_EVENTS}

    def set_perf_events(self, events, live=False, config=False, current=False):
        from vsh.core.lxmlload import etree

        from vsh.core.xmlobject import ensure

        ref, do_live, do_config = self._which(live, config, current, setting=True)
        for name in events:
            if name not in PERF_EVENTS:
                raise InvalidArgument(f"invalid argument: unknown perf event '{name}'")
        if do_live:         # the supervisor holds the counters (vsh.kvm.perf)
            from vsh.api.local.qemustats import rundir
            from vsh.kvm import client

            client.perf(rundir(self.dom.store, ref), enable=[n for n, on in events.items() if on],
                        disable=[n for n, on in events.items() if not on])

        def change(d):
            perf = ensure(d.node, "./perf")
            for name, enabled in events.items():
                el = perf.find(f"event[@name='{name}']")
                if el is None:
                    el = etree.SubElement(perf, "event", name=name)
                el.set("enabled", "yes" if enabled else "no")

        if do_live:
            self._record_live(ref, change)
        if do_config:
            self._change(ref, change)
        return {"live": do_live, "config": do_config}
