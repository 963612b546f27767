"""The local driver: adding, removing, pinning and tuning iothreads (iothreadadd, iothreaddel,
iothreadpin, iothreadset), a part of :class:`vsh.api.local.tuning.LocalDomainTuning`.

Live, an iothread is a QEMU ``iothread`` object (``iothreadN``) made and removed with QMP
object-add / object-del, tuned through its QOM properties; the definitions list every
iothread in ``<iothreadids>`` once one was added or removed, as libvirt writes them.
"""

from __future__ import annotations

from vsh.api.tuning import IOTHREAD_PARAMS
from vsh.core.errors import InvalidArgument, OperationInvalid

#: libvirt's XML place of each iothreadset parameter: (attribute of <iothread>) or (<poll> attribute)
XML_PLACES = {"poll_max_ns": ("poll", "max"), "poll_grow": ("poll", "grow"), "poll_shrink": ("poll", "shrink"),
              "thread_pool_min": (None, "thread_pool_min"), "thread_pool_max": (None, "thread_pool_max")}


def write_ids(d, ids) -> None:
    """Make ``d``'s ``<iothreads>`` and ``<iothreadids>`` list exactly ``ids`` (keeping what the
    remaining ``<iothread>`` elements say)."""
    from vsh.core.lxmlload import etree

    from vsh.core.xmlobject import ensure, normalize_order

    node = d.node
    listed = node.find("iothreadids")
    old = {el.get("id"): el for el in listed.findall("iothread")} if listed is not None else {}
    if listed is not None:
        node.remove(listed)
    count = node.find("iothreads")
    if not ids:
        if count is not None:
            node.remove(count)
        return
    ensure(node, "./iothreads").text = str(len(ids))
    listed = etree.SubElement(node, "iothreadids")
    for i in sorted(ids):
        el = old.get(str(i))
        if el is None:
            el = etree.Element("iothread", id=str(i))
        listed.append(el)
    normalize_order(node)


def users(d, iothread: int) -> list[str]:
    """Targets of the disks (and controllers) of ``d`` that run in iothread ``iothread``."""
    out = []
    for drv in d.node.xpath(".//devices/*/driver[@iothread]"):
        if drv.get("iothread") == str(iothread):
            parent = drv.getparent()
            target = parent.find("target")
            out.append(target.get("dev") if target is not None and target.get("dev") else parent.tag)
    return out


class LocalIothreads:
    """Mixed into :class:`~vsh.api.local.tuning.LocalDomainTuning` (its ``_which``, ``_def``,
    ``_qmp``, ``_change``, ``_record_live``, ``_threads``, ``_check_cpus`` and ``_set_pin``)."""

    def add_iothread(self, iothread, live=False, config=False, current=False):
        ref, do_live, do_config = self._which(live, config, current, setting=True)
        if iothread < 1:
            raise InvalidArgument(f"invalid argument: invalid value of {iothread} for iothread_id")
        for do, is_live in ((do_live, True), (do_config, False)):
            if do and iothread in self._def(ref, is_live).iothread_ids:
                raise InvalidArgument(f"invalid argument: an IOThread is already using iothread_id '{iothread}'")
        if do_live:
            self._qmp(ref, "object-add", {"qom-type": "iothread", "id": f"iothread{iothread}"})
            self._record_live(ref, lambda d: write_ids(d, d.iothread_ids + [iothread]))
        if do_config:
            self._change(ref, lambda cfg: write_ids(cfg, cfg.iothread_ids + [iothread]))
        return {"live": do_live, "config": do_config}

    def delete_iothread(self, iothread, live=False, config=False, current=False):
        ref, do_live, do_config = self._which(live, config, current, setting=True)
        for do, is_live in ((do_live, True), (do_config, False)):
            if not do:
                continue
            d = self._def(ref, is_live)
            if iothread not in d.iothread_ids:
                raise InvalidArgument(f"invalid argument: cannot find IOThread '{iothread}' in iothreadids list")
            used = users(d, iothread)
            if used:
                raise OperationInvalid(f"operation failed: cannot remove IOThread {iothread} since it is being "
                                       f"used by disk '{used[0]}'")

        def drop(d):
            write_ids(d, [i for i in d.iothread_ids if i != iothread])
            pin = d.node.find(f"./cputune/iothreadpin[@iothread='{iothread}']")
            if pin is not None:
                pin.getparent().remove(pin)

        if do_live:
            self._qmp(ref, "object-del", {"id": f"iothread{iothread}"})
            self._record_live(ref, drop)
        if do_config:
            self._change(ref, drop)
        return {"live": do_live, "config": do_config}

    def pin_iothread(self, iothread, cpus, live=False, config=False, current=False):
        from vsh.api.local.threads import set_affinity

        ref, do_live, do_config = self._which(live, config, current, setting=True)
        cpus = self._check_cpus(cpus)
        for do, is_live in ((do_live, True), (do_config, False)):
            if do and iothread not in self._def(ref, is_live).iothread_ids:
                raise InvalidArgument(f"invalid argument: iothreadid {iothread} not found")
        if do_live:
            _, _, threads = self._threads(ref)
            if iothread not in threads:
                raise InvalidArgument(f"invalid argument: iothreadid {iothread} not found")
            set_affinity(threads[iothread], cpus)
            self._record_live(ref, lambda d: self._set_pin(d, "iothreadpin", "iothread", str(iothread), cpus))
        if do_config:
            self._change(ref, lambda cfg: self._set_pin(cfg, "iothreadpin", "iothread", str(iothread), cpus))
        return {"live": do_live, "config": do_config}

    def set_iothread(self, iothread, params, live=False, config=False, current=False):
        ref, do_live, do_config = self._which(live, config, current, setting=True)
        for name, value in params.items():
            if name not in IOTHREAD_PARAMS:
                raise InvalidArgument(f"invalid argument: parameter '{name}' not supported")
            if not isinstance(value, int) or value < 0 or value > (1 << 31) - 1:
                raise InvalidArgument(f"invalid argument: {name} must be between 0 and {(1 << 31) - 1}")
        low, high = params.get("thread_pool_min"), params.get("thread_pool_max")
        if low is not None and high is not None and low > high:
            raise InvalidArgument("invalid argument: thread_pool_min must be less than or equal to thread_pool_max")
        for do, is_live in ((do_live, True), (do_config, False)):
            if do and iothread not in self._def(ref, is_live).iothread_ids:
                raise InvalidArgument(f"invalid argument: cannot find IOThread '{iothread}' in iothreadids")

        def record(d):
            write_ids(d, d.iothread_ids)
            el = d.node.find(f"./iothreadids/iothread[@id='{iothread}']")
            for name, value in params.items():
                child, attr = XML_PLACES[name]
                if child is None:
                    el.set(attr, str(value))
                else:
                    from vsh.core.xmlobject import ensure

                    ensure(el, f"./{child}").set(attr, str(value))

        if do_live:
            # the pool's maximum first when it grows, else its minimum first: QEMU checks min <= max
            order = sorted(params, key=lambda n: (n != "thread_pool_max") if (high or 0) >= (low or 0) else
                           (n != "thread_pool_min"))
            for name in order:
                self._qmp(ref, "qom-set", {"path": f"/objects/iothread{iothread}",
                                           "property": IOTHREAD_PARAMS[name], "value": params[name]})
            self._record_live(ref, record)
        if do_config:
            self._change(ref, record)
        return {"live": do_live, "config": do_config}
