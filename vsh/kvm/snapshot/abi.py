"""Is a snapshot's domain definition ABI-compatible with the running domain?

libvirt's ``virDomainDefCheckABIStability`` decides whether a running QEMU can load a
snapshot's memory state in place; when it cannot, reverting needs ``--force`` (QEMU must be
restarted). This checks the facts the guest can see, with libvirt's words for the first
difference found.
"""

from __future__ import annotations


def _text(node, path: str) -> str:
    return (node.findtext(path) or "").strip()


def _kib(node, path: str) -> int:
    from vsh.core.xmlobject import to_kib

    el = node.find(path)
    if el is None or not (el.text or "").strip():
        return 0
    return to_kib(el.text.strip(), el.get("unit"), path)


def _os_type(node):
    el = node.find("os/type")
    return el if el is not None else node.makeelement("type", {})


def _disks(node) -> list:
    return node.findall("devices/disk")


def _nics(node) -> list:
    return node.findall("devices/interface")


def _attr(el, path: str, name: str) -> str:
    sub = el.find(path)
    return (sub.get(name) or "") if sub is not None else ""


def _first(checks) -> str | None:
    """The first of (format, target value, source value) whose values differ, formatted."""
    for fmt, t, s in checks:
        if t != s:
            return fmt.format(t, s)
    return None


def _devices(kind: str, targets: list, sources: list, checks) -> str | None:
    if len(targets) != len(sources):
        return f"Target domain {kind} count {len(targets)} does not match source {len(sources)}"
    for t, s in zip(targets, sources):
        why = _first(checks(t, s))
        if why:
            return why
    return None


def _disk_checks(t, s) -> list:
    return [("Target disk device {} does not match source {}", t.get("device") or "disk", s.get("device") or "disk"),
            ("Target disk bus {} does not match source {}", _attr(t, "target", "bus"), _attr(s, "target", "bus")),
            ("Target disk {} does not match source {}", _attr(t, "target", "dev"), _attr(s, "target", "dev"))]


def _nic_checks(t, s) -> list:
    return [("Target network card mac {} does not match source {}",
             _attr(t, "mac", "address").lower(), _attr(s, "mac", "address").lower()),
            ("Target network card model {} does not match source {}",
             _attr(t, "model", "type"), _attr(s, "model", "type"))]


def abi_difference(target, source) -> str | None:
    """The first ABI difference between the snapshot's <domain> (target) and the running
    domain's (source), worded as libvirt words it; None when the guest would not notice."""
    checks = [
        ("Target domain virt type {} does not match source {}", target.get("type"), source.get("type")),
        ("Target domain max memory {} does not match source {}",
         _kib(target, "memory"), _kib(source, "memory")),
        ("Target domain vCPU max {} does not match source {}",
         int(_text(target, "vcpu") or 1), int(_text(source, "vcpu") or 1)),
        ("Target domain OS type {} does not match source {}", _text(target, "os/type"), _text(source, "os/type")),
        ("Target domain architecture {} does not match source {}",
         _os_type(target).get("arch"), _os_type(source).get("arch")),
    ]
    t_machine, s_machine = _os_type(target).get("machine"), _os_type(source).get("machine")
    if t_machine and s_machine:
        checks.append(("Target domain machine type {} does not match source {}", t_machine, s_machine))
    return (_first(checks) or _devices("disk", _disks(target), _disks(source), _disk_checks)
            or _devices("net card", _nics(target), _nics(source), _nic_checks))
