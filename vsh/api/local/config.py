"""The local driver: changing a domain's settings: memory, vCPUs, description and title.

The persistent definition changes in the store (:func:`~vsh.api.local.changes.change_config`),
the running domain through its supervisor (:func:`~vsh.api.local.changes.supervisor_call`);
:func:`~vsh.api.local.changes.impact` says which. Every domain handle mixes this in, so
those are imported when a change is made, not on the way to ``dominfo``.
"""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, OperationInvalid, Unsupported


class LocalDomainSettings:
    """Mixed into :class:`~vsh.api.local.domain.LocalDomain` (``store`` and ``ref`` are its)."""

    store = None
    ref = None

    # -- description and title ---------------------------------------------------------------------

    def metadata(self, title: bool = False, live: bool = False, config: bool = False) -> str | None:
        ref = self.ref
        if live and not ref.active:
            raise OperationInvalid("Requested operation is not valid: domain is not running")
        dom = self.store.load(ref, inactive=config or not ref.active)
        return (dom.title if title else dom.description) or None

    def set_metadata(self, text: str | None, title: bool = False, live: bool = False, config: bool = False) -> None:
        store, ref = self.store, self.ref
        use_config = config or not ref.active
        if live and not ref.active:
            raise OperationInvalid("Requested operation is not valid: domain is not running")
        if title and text and "\n" in text:
            raise InvalidArgument("title can't contain newlines")
        if not ref.persistent and use_config:
            raise OperationInvalid("Requested operation is not valid: transient domains do not have any "
                                   "persistent config")
        attr = "title" if title else "description"
        with store.lock(ref.name):
            if use_config or ref.persistent and not live:
                cfg = store.load(ref, inactive=True)
                setattr(cfg, attr, text or None)
                store.write_config(cfg)
            if ref.active and not config:
                self._update_live_xml(lambda dom: setattr(dom, attr, text or None))

    def _update_live_xml(self, change) -> None:
        from vsh.core.domain import Domain
        from vsh.core.store import atomic_write

        live = self.ref.runtime.rundir / "live.xml"
        try:
            dom = Domain.parse(live.read_bytes(), "live.xml")
        except FileNotFoundError:
            return
        change(dom)
        atomic_write(live, dom.to_xml())

    # -- vCPUs -------------------------------------------------------------------------------------

    def vcpu_counts(self, guest: bool = False) -> dict:
        store, ref = self.store, self.ref
        if guest:
            raise OperationInvalid("vcpucount --guest needs a guest agent, which vsh does not use")
        out = {"config": None, "live": None}
        if ref.persistent:
            cfg = store.load(ref, inactive=True)
            out["config"] = {"maximum": cfg.vcpus or 1, "current": cfg.effective_vcpus}
        if ref.active:
            livedom = store.load(ref)
            out["live"] = {"maximum": livedom.vcpus or 1, "current": _online_vcpus(store, ref)
                           or livedom.effective_vcpus}
        return out

    def set_vcpus(self, count: int, maximum: bool = False, live: bool = False, config: bool = False,
                  current: bool = False, guest: bool = False, hotpluggable: bool = False) -> dict:
        from vsh.api.local.changes import change_config, check_config_change, impact, supervisor_call

        store, ref = self.store, self.ref
        if guest:
            raise Unsupported("setvcpus --guest needs a guest agent, which vsh does not use")
        do_live, do_config = impact(ref, live=live, config=config, current=current)
        if count < 1:
            raise InvalidArgument("invalid argument: vcpu count must not be zero")

        def change(cfg):
            cfg.set_vcpus_config(count, maximum=maximum, hotpluggable=hotpluggable)

        if do_live:
            if maximum:
                raise InvalidArgument("invalid argument: maximum vcpu count of a live domain can't be modified")
            if do_config:
                check_config_change(store, ref, change)
            top = store.load(ref).vcpus or 1
            if count > top:
                raise InvalidArgument("invalid argument: requested vcpus is greater than max allowable vcpus for "
                                      f"the live domain: {count} > {top}")
            supervisor_call(store, ref, "set_vcpus", count)
            # the live definition counts them: dominfo, and a save image restores them
            self._update_live_xml(lambda dom: live_vcpus(dom, count))
        if do_config:
            change_config(store, ref, change)
        return {"live": do_live, "config": do_config}

    # -- memory ------------------------------------------------------------------------------------

    def set_memory(self, kib: int, live: bool = False, config: bool = False, current: bool = False) -> dict:
        from vsh.api.local.changes import change_config, check_config_change, impact, supervisor_call

        store, ref = self.store, self.ref
        do_live, do_config = impact(ref, live=live, config=config, current=current)
        if kib <= 0:
            raise InvalidArgument("invalid argument: memory size must not be zero")

        def change(cfg):
            cfg.set_current_memory_config(kib)

        if do_live:
            if do_config:
                check_config_change(store, ref, change)
            livedom = store.load(ref)
            if kib > (livedom.memory or 0):
                raise InvalidArgument("invalid argument: cannot set memory higher than max memory")
            balloon = livedom.node.find("./devices/memballoon")
            if balloon is not None and balloon.get("model") == "none":
                raise OperationInvalid("Requested operation is not valid: Unable to change memory of active "
                                       "domain without the balloon device and guest OS balloon driver")
            supervisor_call(store, ref, "set_balloon", kib)
        if do_config:
            change_config(store, ref, change)
        return {"live": do_live, "config": do_config}

    def set_max_memory(self, kib: int, live: bool = False, config: bool = False, current: bool = False) -> dict:
        from vsh.api.local.changes import change_config, impact

        store, ref = self.store, self.ref
        do_live, _do_config = impact(ref, live=live, config=config, current=current, default="current")
        if do_live:
            raise OperationInvalid("Requested operation is not valid: cannot resize the maximum memory on an "
                                   "active domain")
        if kib <= 0:
            raise InvalidArgument("invalid argument: memory size must not be zero")
        change_config(store, ref, lambda cfg: cfg.set_memory_config(kib))
        return {"live": False, "config": True}


def _online_vcpus(store, ref) -> int | None:
    """How many vCPUs the running QEMU has (``query-cpus-fast``, hot-plugged ones included)."""
    from vsh.api.local.qemustats import qmp
    from vsh.core.errors import VshError

    try:
        return len(qmp(store, ref, "query-cpus-fast")) or None
    except VshError:
        return None


def live_vcpus(dom, count: int) -> None:
    """A live setvcpus in the live definition: ``current`` and libvirt's <vcpus> list, whose
    vCPUs enabled since the start are hot-pluggable (a restore adds them with device_add)."""
    from lxml import etree

    if dom.node.find("./vcpus") is None:
        booted = dom.effective_vcpus
        vlist = etree.Element("vcpus")
        for vid in range(dom.vcpus or 1):
            etree.SubElement(vlist, "vcpu", id=str(vid), enabled="yes" if vid < booted else "no",
                             hotpluggable="no" if vid < booted else "yes")
        dom.node.find("vcpu").addnext(vlist)
    dom.set_vcpus_config(count, hotpluggable=True)
