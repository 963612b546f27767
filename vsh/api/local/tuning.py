"""The local driver: CPU pinning, iothreads, scheduler, disk I/O limits and NIC bandwidth.

Pinning acts on the process as libvirt does without cpuset cgroups: ``sched_setaffinity`` on
the vCPU threads (QMP query-cpus-fast names them), on the iothreads (query-iothreads) and on
the remaining (emulator) threads; the persistent settings live in ``<cputune>``, ``<iotune>``
and ``<bandwidth>``. Disk limits are QEMU's own throttling (block_set_io_throttle). The
scheduler's CPU weight and bandwidth are those of QEMU's own cgroup (:mod:`vsh.kvm.cgroup`,
made when vsh runs as root; cgroup v1 or v2).
"""

from __future__ import annotations

import os

from vsh.api.local.iothreads import LocalIothreads
from vsh.api.local.resources import LocalResources
from vsh.api.local.threads import QMP_IOTUNE, drive_of, emulator_threads, qemu_threads, set_affinity, throttle
from vsh.api.tuning import BANDWIDTH_PARAMS, IOTUNE_PARAMS, SCHED_PARAMS, DomainTuning
from vsh.core.errors import InvalidArgument, OperationInvalid, Unsupported

#: the order of <cputune>'s children as libvirt writes them
CPUTUNE_ORDER = ("shares", "period", "quota", "global_period", "global_quota", "emulator_period", "emulator_quota",
                 "iothread_period", "iothread_quota", "vcpupin", "emulatorpin", "iothreadpin", "vcpusched",
                 "iothreadsched", "emulatorsched", "cachetune", "memorytune")


def _element(name: str) -> str:
    """The ``<cputune>`` element of a scheduler parameter."""
    return {"cpu_shares": "shares", "vcpu_period": "period", "vcpu_quota": "quota"}.get(name, name)


def sort_cputune(node) -> None:
    """Put the children of the domain element ``node``'s ``<cputune>`` in libvirt's order."""
    tune = node.find("./cputune")
    if tune is None:
        return
    rank = {tag: i for i, tag in enumerate(CPUTUNE_ORDER)}
    children = sorted(tune, key=lambda el: (rank.get(el.tag, len(rank)), int(el.get("vcpu") or el.get("iothread")
                                                                             or 0)))
    for el in children:
        tune.remove(el)
        tune.append(el)


def check_sched_value(name: str, value: int) -> None:
    """libvirt's ranges: shares 2..262144, periods 1000..1000000, quotas -1 or 1000..17592186044415."""
    if name not in SCHED_PARAMS:
        raise InvalidArgument(f"invalid argument: parameter '{name}' not supported")
    if name == "cpu_shares":
        ok = 2 <= value <= 262144
    elif name.endswith("_period"):
        ok = value == 0 or 1000 <= value <= 1000000
    else:
        ok = value == -1 or value == 0 or 1000 <= value <= 17592186044415
    if not ok:
        raise InvalidArgument(f"invalid argument: value of '{name}' is out of range: {value}")


def _cpuset_text(cpus) -> str:
    from vsh.core.domain import format_cpuset

    return format_cpuset(cpus)


def merge_iotune(old: dict, params: dict) -> dict:
    """libvirt's merge of new I/O limits with the current ones: a total/read/write group given in
    ``params`` replaces the whole group (the members not given become 0), other values are kept."""
    merged = dict(old)
    merged.update(params)
    for unit in ("bytes_sec", "iops_sec"):
        for suffix in ("", "_max", "_max_length"):
            group = [f"{way}_{unit}{suffix}" for way in ("total", "read", "write")]
            if any(name in params for name in group):
                for name in group:
                    merged[name] = params.get(name, 0)
    return merged


class LocalDomainTuning(LocalIothreads, LocalResources, DomainTuning):
    """``dom.tuning`` of a :class:`~vsh.api.local.domain.LocalDomain`."""

    def __init__(self, dom):
        self.dom = dom

    # -- plumbing ------------------------------------------------------------------------------------

    def _which(self, live, config, current, setting=False):
        """(ref, live?, config?): one definition for a query, one or both for a change."""
        from vsh.api.local.changes import impact

        ref = self.dom.refresh()
        if live and config and not setting:
            raise InvalidArgument("invalid argument: flags 'live' and 'config' are mutually exclusive")
        do_live, do_config = impact(ref, live=live, config=config, current=current, default="current")
        return ref, do_live, do_config

    def _def(self, ref, live: bool):
        return self.dom.store.load(ref, inactive=not live)

    def _qmp(self, ref, cmd, args=None):
        from vsh.api.local.qemustats import qmp

        return qmp(self.dom.store, ref, cmd, args)

    def _host_cpus(self) -> list[int]:
        return list(range(self.dom.conn.host.cpu_count()))

    def _check_cpus(self, cpus) -> list[int]:
        n = self.dom.conn.host.cpu_count()
        if not cpus:
            raise InvalidArgument("invalid argument: Empty cpu list for pinning")
        bad = [c for c in cpus if c >= n]
        if bad:
            raise InvalidArgument(f"invalid argument: CPU {bad[0]} is not available on the host (max {n - 1})")
        return sorted(set(cpus))

    def _change(self, ref, change):
        from vsh.api.local.changes import change_config

        change_config(self.dom.store, ref, change)

    def _default_cpus(self, d) -> list[int]:
        from vsh.core.domain import parse_cpuset

        vcpu = d.node.find("vcpu")
        cpuset = vcpu.get("cpuset") if vcpu is not None else None
        return sorted(parse_cpuset(cpuset)) if cpuset else self._host_cpus()

    def _pinned(self, d, xpath: str) -> list[int]:
        from vsh.core.domain import parse_cpuset

        el = d.node.find(xpath)
        return sorted(parse_cpuset(el.get("cpuset"))) if el is not None and el.get("cpuset") else self._default_cpus(d)

    @staticmethod
    def _set_pin(cfg, tag: str, key: str | None, value: str | None, cpus) -> None:
        from vsh.core.xmlobject import ensure

        tune = ensure(cfg.node, "./cputune")
        path = f"{tag}[@{key}='{value}']" if key else tag
        el = tune.find(path)
        if el is None:
            from vsh.core.lxmlload import etree

            el = etree.SubElement(tune, tag)
            if key:
                el.set(key, value)
        el.set("cpuset", _cpuset_text(cpus))
        sort_cputune(cfg.node)

    def _threads(self, ref) -> tuple[int, dict, dict]:
        return qemu_threads(self.dom.store, ref)

    @staticmethod
    def _affinity(tid: int) -> list[int]:
        try:
            return sorted(os.sched_getaffinity(tid))
        except OSError:
            return []

    # -- vCPU and emulator pinning -----------------------------------------------------------------------

    def vcpu_pins(self, live=False, config=False, current=False):
        ref, do_live, _ = self._which(live, config, current)
        if do_live:
            _, vcpus, _ = self._threads(ref)
            return [{"vcpu": n, "cpus": self._affinity(tid)} for n, tid in sorted(vcpus.items())]
        d = self._def(ref, False)
        return [{"vcpu": n, "cpus": self._pinned(d, f"./cputune/vcpupin[@vcpu='{n}']")}
                for n in range(d.effective_vcpus)]

    def pin_vcpu(self, vcpu, cpus, live=False, config=False, current=False):
        ref, do_live, do_config = self._which(live, config, current, setting=True)
        cpus = self._check_cpus(cpus)
        if do_config:
            d = self._def(ref, False)
            if not 0 <= vcpu < (d.vcpus or 1):
                raise InvalidArgument(f"invalid argument: vcpu {vcpu} is out of range of persistent cpu count "
                                      f"{d.vcpus or 1}")
        if do_live:
            _, vcpus, _ = self._threads(ref)
            if vcpu not in vcpus:
                raise InvalidArgument(f"invalid argument: vcpu {vcpu} is out of range of live cpu count "
                                      f"{len(vcpus)}")
            set_affinity(vcpus[vcpu], cpus)
            self._record_live(ref, lambda d: self._set_pin(d, "vcpupin", "vcpu", str(vcpu), cpus))
        if do_config:
            self._change(ref, lambda cfg: self._set_pin(cfg, "vcpupin", "vcpu", str(vcpu), cpus))
        return {"live": do_live, "config": do_config}

    def _record_live(self, ref, change) -> None:
        """Write ``change`` into the live definition too, as libvirt's live XML shows the setting."""
        from vsh.api.local.changes import update_live_xml

        with self.dom.store.lock(ref.name):
            update_live_xml(ref, change)

    def _emulator_tids(self, ref) -> tuple[int, list[int]]:
        pid, vcpus, iothreads = self._threads(ref)
        return pid, emulator_threads(pid, vcpus, iothreads)

    def emulator_pin(self, live=False, config=False, current=False):
        ref, do_live, _ = self._which(live, config, current)
        if do_live:
            pid, _ = self._emulator_tids(ref)
            return self._affinity(pid)
        return self._pinned(self._def(ref, False), "./cputune/emulatorpin")

    def pin_emulator(self, cpus, live=False, config=False, current=False):
        ref, do_live, do_config = self._which(live, config, current, setting=True)
        cpus = self._check_cpus(cpus)
        if do_live:
            for tid in self._emulator_tids(ref)[1]:
                set_affinity(tid, cpus)
            self._record_live(ref, lambda d: self._set_pin(d, "emulatorpin", None, None, cpus))
        if do_config:
            self._change(ref, lambda cfg: self._set_pin(cfg, "emulatorpin", None, None, cpus))
        return {"live": do_live, "config": do_config}

    def iothreads(self, live=False, config=False, current=False):
        ref, do_live, _ = self._which(live, config, current)
        if do_live:
            _, _, threads = self._threads(ref)
            return [{"id": n, "cpus": self._affinity(tid)} for n, tid in sorted(threads.items())]
        d = self._def(ref, False)
        return [{"id": i, "cpus": self._pinned(d, f"./cputune/iothreadpin[@iothread='{i}']")} for i in d.iothread_ids]

    # -- cgroups: the scheduler here, memory, I/O and cpuset in LocalResources ----------------------------

    def _cgroup(self, ref, controller: str, what: str) -> tuple[str, str]:
        """QEMU's own group (``(kind, directory)``, :func:`vsh.kvm.cgtune.find`) in the hierarchy of
        ``controller`` (memory, blkio, cpuset); OperationInvalid with libvirt's words ``what`` and
        the reason otherwise."""
        from vsh.api.local.qemustats import qemu_pid
        from vsh.kvm import cgtune

        try:
            return cgtune.find(qemu_pid(ref), controller)
        except cgtune.CgroupError as exc:
            raise OperationInvalid(f"Requested operation is not valid: {what}",
                                   hint=exc.strerror + "; use --config to change the definition for the next "
                                   "boot") from None

    def _cpu(self, ref, change: dict | None = None) -> dict:
        """The CPU knobs of QEMU's own cgroup (vsh.kvm.cgroup): read, or first changed."""
        from vsh.api.local.qemustats import qemu_pid
        from vsh.kvm import cgroup

        pid = qemu_pid(ref)
        try:
            if change:
                cgroup.set_cpu(pid, change.get("cpu_shares"), change.get("global_period"),
                               change.get("global_quota"))
            return cgroup.cpu_settings(pid)
        except cgroup.CgroupError as exc:
            raise OperationInvalid("Requested operation is not valid: cgroup CPU controller is not mounted",
                                   hint=exc.strerror + "; use --config to change the definition for the "
                                   "next boot") from None

    def scheduler(self, live=False, config=False, current=False):
        ref, do_live, _ = self._which(live, config, current)
        params = dict.fromkeys(SCHED_PARAMS, 0)      # libvirt's 0: not set
        if do_live:
            cpu = self._cpu(ref)
            params.update(cpu_shares=cpu["shares"], global_period=cpu["period"], global_quota=cpu["quota"])
            return {"scheduler": "posix", "params": params}
        d = self._def(ref, False)
        for name in SCHED_PARAMS:
            text = d.node.findtext(f"./cputune/{_element(name)}")
            if text and text.strip().lstrip("-").isdigit():
                params[name] = int(text)
        return {"scheduler": "posix", "params": params}

    def set_scheduler(self, params, live=False, config=False, current=False):
        ref, do_live, do_config = self._which(live, config, current, setting=True)
        for name, value in params.items():
            check_sched_value(name, int(value))
        if do_live:
            other = sorted(set(params) - {"cpu_shares", "global_period", "global_quota"})
            if other:
                raise Unsupported(f"operation not supported: '{other[0]}' needs a cgroup per thread, "
                                  "which vsh does not create; use --config")
            self._cpu(ref, {k: int(v) for k, v in params.items()})

        def change(cfg):
            from vsh.core.xmlobject import ensure

            for name, value in params.items():
                ensure(cfg.node, f"./cputune/{_element(name)}").text = str(int(value))
            sort_cputune(cfg.node)

        if do_live:
            self._record_live(ref, change)
        if do_config:
            self._change(ref, change)
        return {"live": do_live, "config": do_config}

    # -- disk I/O limits -----------------------------------------------------------------------------------

    def _disk(self, d, disk: str):
        from vsh.api.local.qemustats import find_disk

        found = find_disk(d, disk)
        if found is None:
            raise InvalidArgument(f"invalid argument: disk '{disk}' was not found in the domain config")
        return found

    def block_iotune(self, disk, live=False, config=False, current=False):
        ref, do_live, _ = self._which(live, config, current)
        d = self._def(ref, do_live)
        found = self._disk(d, disk)
        if do_live:
            _, ins = drive_of(self.dom.store, ref, found)
            return {name: (ins.get(QMP_IOTUNE[name]) or ("" if name == "group_name" else 0))
                    for name in IOTUNE_PARAMS}
        out = {}
        for name in IOTUNE_PARAMS:
            text = found.node.findtext(f"./iotune/{name}")
            out[name] = (text or "") if name == "group_name" else int(text) if text and text.isdigit() else 0
        return out

    def set_block_iotune(self, disk, params, live=False, config=False, current=False):
        ref, do_live, do_config = self._which(live, config, current, setting=True)
        unknown = sorted(set(params) - set(IOTUNE_PARAMS))
        if unknown:
            raise InvalidArgument(f"invalid argument: parameter '{unknown[0]}' not supported")
        for which in ("bytes_sec", "iops_sec"):
            for suffix in ("", "_max"):
                if params.get(f"total_{which}{suffix}") and (params.get(f"read_{which}{suffix}")
                                                              or params.get(f"write_{which}{suffix}")):
                    raise InvalidArgument(f"invalid argument: total and read/write of {which}{suffix} "
                                          "cannot be set at the same time")
        if do_live:
            d = self._def(ref, True)
            found = self._disk(d, disk)
            qdev, ins = drive_of(self.dom.store, ref, found)
            merged = merge_iotune({name: ins.get(QMP_IOTUNE[name]) for name in IOTUNE_PARAMS}, params)
            throttle(self.dom.store, ref, qdev, merged)
            self._record_live(ref, lambda dom: self._write_iotune(self._disk(dom, disk), merged))
        if do_config:
            def change(cfg):
                found = self._disk(cfg, disk)
                old = {name: found.node.findtext(f"./iotune/{name}") for name in IOTUNE_PARAMS}
                self._write_iotune(found, merge_iotune(old, params))

            self._change(ref, change)
        return {"live": do_live, "config": do_config}

    @staticmethod
    def _write_iotune(found, values: dict) -> None:
        from vsh.core.lxmlload import etree

        node = found.node
        old = node.find("./iotune")
        if old is not None:
            node.remove(old)
        kept = [(name, values.get(name)) for name in IOTUNE_PARAMS
                if values.get(name) not in (None, "", 0, "0")]
        if not kept:
            return
        tune = etree.Element("iotune")
        for name, value in kept:
            etree.SubElement(tune, name).text = str(value)
        anchor = None
        for tag in ("target", "source", "driver"):
            anchor = node.find(tag)
            if anchor is not None:
                break
        if anchor is not None:
            anchor.addnext(tune)
        else:
            node.append(tune)

    # -- NIC bandwidth -------------------------------------------------------------------------------------

    def _nic(self, d, interface: str):
        for nic in d.interfaces:
            if interface.lower() == (nic.mac or "").lower() or interface in (nic.target_dev, nic.alias):
                return nic
        raise InvalidArgument(f"invalid argument: Interface '{interface}' not found in domain "
                              f"'{self.dom.name}'")

    def interface_bandwidth(self, interface, live=False, config=False, current=False):
        ref, do_live, _ = self._which(live, config, current)
        nic = self._nic(self._def(ref, do_live), interface)
        out = {}
        for name in BANDWIDTH_PARAMS:
            direction, key = name.split(".")
            el = nic.node.find(f"./bandwidth/{direction}")
            value = el.get(key) if el is not None else None
            out[name] = int(value) if value and value.isdigit() else 0
        return out

    def set_interface_bandwidth(self, interface, inbound=None, outbound=None, live=False, config=False,
                                current=False):
        ref, do_live, do_config = self._which(live, config, current, setting=True)
        if do_live:
            raise Unsupported("operation not supported: setting bandwidth on a running domain needs tc shaping "
                              "of its host-side interface, which vsh does not do",
                              hint="use --config; the definition keeps <bandwidth> for the next boot")

        def change(cfg):
            from vsh.core.xmlobject import ensure

            nic = self._nic(cfg, interface)
            for direction, values in (("inbound", inbound), ("outbound", outbound)):
                if values is None:
                    continue
                bw = ensure(nic.node, "./bandwidth")
                old = bw.find(direction)
                if old is not None:
                    bw.remove(old)
                if values.get("average") or values.get("floor"):
                    el = ensure(bw, direction)
                    for key in ("average", "peak", "burst", "floor"):
                        if values.get(key):
                            el.set(key, str(values[key]))
                if len(bw) == 0:
                    nic.node.remove(bw)

        self._change(ref, change)
        return {"live": False, "config": do_config}
