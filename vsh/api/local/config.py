"""The local driver: changing a domain's settings: memory, vCPUs, description and title.

The persistent definition changes in the store (:func:`~vsh.api.local.changes.change_config`),
the running domain through its supervisor (:func:`~vsh.api.local.changes.supervisor_call`);
:func:`~vsh.api.local.changes.impact` says which. Every domain handle mixes this in, so
those are imported when a change is made, not on the way to ``dominfo``.
"""

from __future__ import annotations

from vsh.core import journal
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
        journal.record(store.run_root, ref.name, "metadata-change", attr, "")

    def _update_live_xml(self, change) -> None:
        from vsh.api.local.changes import update_live_xml

        update_live_xml(self.ref, change)

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

    def set_vcpu(self, vcpus: list[int], enable: bool, live: bool = False, config: bool = False,
                 current: bool = False) -> dict:
        from vsh.api.local.changes import impact

        do_live, do_config = impact(self.ref, live=live, config=config, current=current)
        wanted = sorted(set(vcpus))
        if not wanted:
            raise InvalidArgument("invalid argument: no vCPU given")
        counts = {}
        for is_live, do in ((True, do_live), (False, do_config)):
            if not do:
                continue
            d = self.store.load(self.ref, inactive=not is_live)
            top, count = d.vcpus or 1, d.effective_vcpus
            which = "live" if is_live else "persistent"
            for v in wanted:
                if v >= top:
                    raise InvalidArgument(f"invalid argument: vcpu '{v}' is not present in {which} config")
                if v == 0 and not enable:
                    raise InvalidArgument("invalid argument: vCPU '0' can't be modified")
                if (v < count) == enable:
                    raise InvalidArgument(f"invalid argument: vcpu '{v}' is already in requested state")
            span = list(range(count, count + len(wanted))) if enable else list(range(count - len(wanted), count))
            if wanted != span:
                nxt = f"enable vCPU {count} first" if enable else f"disable vCPU {count - 1} first"
                raise Unsupported(f"unsupported configuration: vsh keeps the enabled vCPUs numbered from 0 "
                                  f"without gaps ({which} config has 0-{count - 1}): {nxt}")
            counts[is_live] = count + len(wanted) if enable else count - len(wanted)
        if True in counts:
            self.set_vcpus(counts[True], live=True)
        if False in counts:
            self.set_vcpus(counts[False], config=True, hotpluggable=True)
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

    # -- custom metadata elements ------------------------------------------------------------------

    def metadata_element(self, uri: str, live: bool = False, config: bool = False) -> str:
        from vsh.api.local.changes import impact
        from vsh.core.errors import NotFound

        do_live, _do_config = impact(self.refresh(), live=live, config=config, default="current")
        dom = self.store.load(self.ref, inactive=not do_live)
        found = _metadata_child(dom.node, uri)
        if found is None:
            raise NotFound("metadata not found: Requested metadata element is not present")
        return _without_namespace(found, uri)

    def set_metadata_element(self, uri: str, key: str | None, xml: str | None, live: bool = False,
                             config: bool = False) -> dict:
        from vsh.api.local.changes import change_config, impact

        new = None
        if xml is not None:
            if not key or not _is_ncname(key):
                raise InvalidArgument(f"invalid argument: invalid metadata key '{key or ''}'")
            new = _namespaced(xml, uri, key)
        if not uri or ":" not in uri:
            raise InvalidArgument(f"invalid argument: invalid metadata namespace URI '{uri or ''}'")
        ref = self.refresh()
        do_live, do_config = impact(ref, live=live, config=config, default="current")

        def change(dom):
            _replace_metadata(dom.node, uri, new)

        if do_config:
            change_config(self.store, ref, change)
        if do_live:
            with self.store.lock(ref.name):
                self._update_live_xml(change)
        journal.record(self.store.run_root, ref.name, "metadata-change", "element", uri)
        return {"live": do_live, "config": do_config}

    # -- lifecycle actions -------------------------------------------------------------------------

    def set_lifecycle_action(self, event: str, action: str, live: bool = False, config: bool = False,
                             current: bool = False) -> dict:
        from vsh.api.local.changes import change_config, check_config_change, impact, supervisor_call

        if event not in LIFECYCLE_EVENTS:
            raise InvalidArgument(f"invalid argument: Invalid lifecycle type '{event}'.")
        if action not in LIFECYCLE_ACTIONS:
            raise InvalidArgument(f"invalid argument: Invalid lifecycle action '{action}'.")
        if event != "crash" and action.startswith("coredump-"):
            raise Unsupported(f"unsupported configuration: Lifecycle event '{event}' doesn't support "
                              f"'{action}' action")
        ref = self.refresh()
        do_live, do_config = impact(ref, live=live, config=config, current=current, default="current")
        key = "on_" + event

        def change(dom):
            setattr(dom, key, action)

        if do_live:
            if do_config:
                check_config_change(self.store, ref, change)
            supervisor_call(self.store, ref, "set_lifecycle", key, action)
            with self.store.lock(ref.name):
                self._update_live_xml(change)
        if do_config:
            change_config(self.store, ref, change)
        return {"live": do_live, "config": do_config}

    # -- interface link state ----------------------------------------------------------------------

    def interface_link(self, iface: str, inactive: bool = False) -> dict:
        ref = self.refresh()
        dom = self.store.load(ref, inactive=inactive or not ref.active)
        nic, _index = _find_interface(dom, iface)
        return {"interface": iface, "mac": nic.mac, "state": nic.link_state or "up"}

    def set_interface_link(self, iface: str, state: str, config: bool = False) -> dict:
        from vsh.api.local.changes import change_config, supervisor_call

        if state not in ("up", "down"):
            raise InvalidArgument(f"invalid argument: Invalid link state '{state}'")
        ref = self.refresh()
        if config or not ref.active:
            if not ref.persistent:
                raise OperationInvalid("Requested operation is not valid: transient domains do not have any "
                                       "persistent config")
            change_config(self.store, ref, lambda dom: _set_link(dom, iface, state))
            return {"live": False, "config": True}
        from vsh.kvm.argv.network import nic_qemu_id

        nic, index = _find_interface(self.store.load(ref), iface)
        supervisor_call(self.store, ref, "qmp", "set_link", {"name": nic_qemu_id(nic.node, index),
                                                             "up": state == "up"})
        with self.store.lock(ref.name):
            self._update_live_xml(lambda dom: _set_link(dom, iface, state))
        return {"live": True, "config": False}


#: virDomainLifecycle and virDomainLifecycleAction, in libvirt's order
LIFECYCLE_EVENTS = ("poweroff", "reboot", "crash")
LIFECYCLE_ACTIONS = ("destroy", "restart", "rename-restart", "preserve", "coredump-destroy", "coredump-restart")


def _find_interface(dom, iface: str):
    """The ``<interface>`` whose MAC or target device is ``iface``, and its index (as virsh finds it)."""
    from vsh.core.errors import NotFound
    from vsh.core.names import is_mac

    by_mac = is_mac(iface)
    matches = [(nic, i) for i, nic in enumerate(dom.interfaces)
               if (by_mac and (nic.mac or "").lower() == iface.lower()) or (not by_mac and nic.target_dev == iface)]
    if not matches:
        raise NotFound(f"interface ({'mac' if by_mac else 'target'}: {iface}) not found")
    if len(matches) > 1:
        raise OperationInvalid("multiple matching interfaces found")
    return matches[0]


def _set_link(dom, iface: str, state: str) -> None:
    nic, _index = _find_interface(dom, iface)
    nic.link_state = state


def _is_ncname(key: str) -> bool:
    import re

    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key) is not None


def _metadata_child(node, uri: str):
    meta = node.find("./metadata")
    if meta is None:
        return None
    prefix = "{%s}" % uri
    return next((el for el in meta if isinstance(el.tag, str) and el.tag.startswith(prefix)), None)


def _namespaced(xml: str, uri: str, key: str):
    """The element of ``xml`` in namespace ``uri`` (prefix ``key``), as libvirt stores it."""
    from vsh.core.lxmlload import etree

    from vsh.core.xml import parse

    el = parse(xml, "metadata", root_tag=None)
    tag = etree.QName(el).localname
    new = etree.Element("{%s}%s" % (uri, tag), nsmap={key: uri})
    new.text, new.tail = el.text, None
    for name, value in el.attrib.items():
        new.set(name, value)
    for child in el:
        new.append(child)
    return new


def _without_namespace(el, uri: str) -> str:
    """The element as virsh prints it: no namespace on the elements of ``uri``."""
    import copy

    from vsh.core.lxmlload import etree

    el = copy.deepcopy(el)
    el.tail = None
    for node in el.iter():
        if isinstance(node.tag, str) and node.tag.startswith("{%s}" % uri):
            node.tag = etree.QName(node).localname
    etree.cleanup_namespaces(el)
    return etree.tostring(el, encoding="unicode")


def _replace_metadata(node, uri: str, new) -> None:
    """Put ``new`` in ``<metadata>`` in place of the element of namespace ``uri`` (None: remove it)."""
    from vsh.core.lxmlload import etree

    meta = node.find("./metadata")
    old = _metadata_child(node, uri)
    if old is not None:
        if new is not None:
            old.addprevious(new)
        old.getparent().remove(old)
    elif new is not None:
        if meta is None:
            meta = etree.Element("metadata")
            anchor = next((node.find(t) for t in ("description", "title", "uuid", "name")
                           if node.find(t) is not None), None)
            if anchor is not None:
                anchor.addnext(meta)
            else:
                node.insert(0, meta)
        meta.append(new)
    if meta is not None and len(meta) == 0 and not (meta.text or "").strip():
        node.remove(meta)


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
    from vsh.core.lxmlload import etree

    if dom.node.find("./vcpus") is None:
        booted = dom.effective_vcpus
        vlist = etree.Element("vcpus")
        for vid in range(dom.vcpus or 1):
            etree.SubElement(vlist, "vcpu", id=str(vid), enabled="yes" if vid < booted else "no",
                             hotpluggable="no" if vid < booted else "yes")
        dom.node.find("vcpu").addnext(vlist)
    dom.set_vcpus_config(count, hotpluggable=True)
