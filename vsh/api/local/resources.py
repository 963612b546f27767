"""The local driver: memory, block I/O and NUMA tunables and perf events (memtune, blkiotune,
numatune, perf), a part of :class:`vsh.api.local.tuning.LocalDomainTuning`.

The definitions keep libvirt's ``<memtune>``, ``<blkiotune>``, ``<numatune>`` and ``<perf>``.
Live values are the cgroup v2 files of a cgroup that holds QEMU alone (memory.max, memory.high,
memory.swap.max, io.weight, io.max, cpuset.mems), as libvirt's QEMU driver uses them: the group
vsh makes for QEMU on a cgroup v2 host when it runs as root (:mod:`vsh.kvm.cgroup`); where QEMU
has none such the live calls say why (the ``_cgroup`` check of the tuning handle). vsh opens no perf counters on QEMU's threads.
"""

from __future__ import annotations

import os

from vsh.api.tuning import BLKIO_DEVICE_PARAMS, MEMTUNE_PARAMS, NUMA_MODES, PERF_EVENTS
from vsh.core.errors import InvalidArgument, OperationInvalid, Unsupported, VshError

_MEM_FILES = {"hard_limit": "memory.max", "soft_limit": "memory.high", "swap_hard_limit": "memory.swap.max"}
_MEM_NOT_MOUNTED = "cgroup memory controller is not mounted"
_BLKIO_NOT_MOUNTED = "blkio cgroup isn't mounted"
_CPUSET_NOT_MOUNTED = "cgroup cpuset controller is not mounted"
_IO_MAX_KEYS = {"device_read_iops_sec": "riops", "device_write_iops_sec": "wiops",
                "device_read_bytes_sec": "rbps", "device_write_bytes_sec": "wbps"}


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


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read().strip()


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(text)
    except OSError as exc:
        raise VshError(f"Unable to write to '{path}': {exc.strerror}") from None


def _major_minor(path: str) -> str:
    import stat

    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidArgument(f"invalid argument: cannot stat '{path}': {exc.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"invalid argument: path '{path}' must be a block device")
    return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"


class LocalResources:
    """Mixed into :class:`~vsh.api.local.tuning.LocalDomainTuning` (its ``_which``, ``_def``,
    ``_change``, ``_record_live`` and ``_cgroup``)."""

    # -- memtune -----------------------------------------------------------------------------------------

    def memory_parameters(self, live=False, config=False, current=False):
        ref, do_live, _ = self._which(live, config, current)
        if do_live:
            path = self._cgroup(ref, "memory.max", _MEM_NOT_MOUNTED)
            out = dict.fromkeys(MEMTUNE_PARAMS[:3])
            for name, leaf in _MEM_FILES.items():
                try:
                    text = _read(os.path.join(path, leaf))
                except OSError:
                    continue
                out[name] = None if text == "max" else int(text) // 1024
            if out["swap_hard_limit"] is not None and out["hard_limit"] is not None:
                out["swap_hard_limit"] += out["hard_limit"]     # libvirt's is memory + swap
            return out
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
            path = self._cgroup(ref, "memory.max", _MEM_NOT_MOUNTED)
            now = self.memory_parameters(live=True)
            now.update(params)
            for name, leaf in _MEM_FILES.items():
                if name not in params:
                    continue
                value = now[name]
                if name == "swap_hard_limit" and value is not None:
                    value -= now["hard_limit"]
                _write(os.path.join(path, leaf), "max" if value is None else str(value * 1024))

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
        if do_live:
            self._cgroup(ref, "io.weight", _BLKIO_NOT_MOUNTED)
        d = self._def(ref, do_live)
        weight = d.node.findtext("./blkiotune/weight")
        out = {"weight": int(weight) if weight and weight.strip().isdigit() else 0}
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
            path = self._cgroup(ref, "io.weight", _BLKIO_NOT_MOUNTED)
            if "weight" in params:
                _write(os.path.join(path, "io.weight"), f"default {int(params['weight'])}")
            for name, items in lists.items():
                for dev, value in items:
                    if name == "device_weight":
                        _write(os.path.join(path, "io.weight"), f"{_major_minor(dev)} {value or 'default'}")
                    else:
                        _write(os.path.join(path, "io.max"),
                               f"{_major_minor(dev)} {_IO_MAX_KEYS[name]}={value or 'max'}")

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
            path = self._cgroup(ref, "cpuset.mems", _CPUSET_NOT_MOUNTED)
            try:
                out["numa_nodeset"] = _read(os.path.join(path, "cpuset.mems"))
            except OSError:
                pass
        return out

    @staticmethod
    def _host_nodes() -> set[int]:
        from vsh.core.domain import parse_cpuset

        try:
            return set(parse_cpuset(_read("/sys/devices/system/node/online")))
        except (OSError, VshError):
            return {0}

    def set_numa_parameters(self, mode=None, nodeset=None, live=False, config=False, current=False):
        from vsh.core.domain import format_cpuset, parse_cpuset
        from vsh.core.xmlobject import ensure

        ref, do_live, do_config = self._which(live, config, current, setting=True)
        if mode is not None and mode not in NUMA_MODES:
            raise InvalidArgument(f"invalid argument: unsupported numatune mode: '{mode}'")
        if nodeset is not None:
            nodes = parse_cpuset(nodeset)
            missing = sorted(nodes - self._host_nodes())
            if missing:
                raise InvalidArgument(f"unsupported configuration: NUMA node {missing[0]} is unavailable")
            nodeset = format_cpuset(nodes)
        if do_live:
            if mode is not None and mode != self.numa_parameters(live=True)["numa_mode"]:
                raise OperationInvalid("Requested operation is not valid: can't change numatune mode for running "
                                       "domain")
            path = self._cgroup(ref, "cpuset.mems", _CPUSET_NOT_MOUNTED)
            if nodeset is not None:
                _write(os.path.join(path, "cpuset.mems"), nodeset)

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
        if do_live:
            raise Unsupported("unsupported configuration: vsh opens no perf counters on a running domain's "
                              "QEMU threads; use --config to enable them in the definition")

        def change(d):
            perf = ensure(d.node, "./perf")
            for name, enabled in events.items():
                el = perf.find(f"event[@name='{name}']")
                if el is None:
                    el = etree.SubElement(perf, "event", name=name)
                el.set("enabled", "yes" if enabled else "no")

        self._change(ref, change)
        return {"live": False, "config": do_config}
