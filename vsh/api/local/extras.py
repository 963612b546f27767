"""Less common operations on one domain: core dumps, monitor events, replacing the XML of a
save image, and the operations libvirt's QEMU driver refuses (LXC namespaces, process
signals) or that need hardware vsh never has (SEV launch security).
"""

from __future__ import annotations

import os

from vsh.api.lifecycle import DUMP_FORMATS
from vsh.core.errors import InvalidArgument, OperationInvalid, Unsupported
from vsh.kvm import confine



def not_supported(api: str) -> Unsupported:
    """libvirt's error for a driver without the entry point ``api``."""
    return Unsupported(f"this function is not supported by the connection driver: {api}")


def running_rundir(dom) -> str:
    from vsh.kvm import client

    ref = dom.refresh()
    rundir = dom.store.runtime_path(ref.name)
    st = client.read_state(rundir) if ref.active else None
    if not st or st.get("state") not in client.ACTIVE_STATES:
        raise OperationInvalid("Requested operation is not valid: domain is not running")
    return rundir


def dump(dom, path: str, fmt: str | None, memory_only: bool, live: bool, crash: bool, reset: bool,
         bypass_cache: bool = False) -> dict:
    """The guest's memory as an ELF core (or ``fmt``) in ``path``, through QEMU's
    ``dump-guest-memory``; QEMU stops the vCPUs while it writes and resumes them after."""
    from vsh.kvm import client

    for (a, b), both in ((("CRASH", "LIVE"), crash and live), (("CRASH", "RESET"), crash and reset),
                         (("LIVE", "RESET"), live and reset)):
        if both:
            raise InvalidArgument(f"invalid argument: Flags 'VIR_DUMP_{a}' and 'VIR_DUMP_{b}' are mutually exclusive")
    if fmt is not None and fmt not in DUMP_FORMATS:
        raise InvalidArgument(f"unsupported configuration: unsupported dumpformat '{fmt}'")
    if fmt not in (None, "elf") and not memory_only:
        raise InvalidArgument("invalid argument: dump format other than ELF needs memory-only dump")
    fmt = fmt or "elf"
    rundir = running_rundir(dom)
    path = os.path.abspath(path)
    if not os.path.isdir(os.path.dirname(path)):
        raise InvalidArgument(f"Failed to create file '{path}': No such file or directory")
    confine.grant_output(rundir, path)      # QEMU writes it: a confined QEMU needs the grant
    client.qmp(rundir, "dump-guest-memory", {"paging": False, "protocol": f"file:{path}",
                                             "detach": False, "format": fmt}, timeout=3600.0)
    if bypass_cache:
        from vsh.kvm import saveimage

        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fdatasync(fd)
            saveimage.drop_page_cache(fd)
        finally:
            os.close(fd)
    if crash:
        client.destroy(rundir)
    elif reset:
        client.reset(rundir)
    return {"path": path, "format": fmt}


def monitor_events(dom, event: str | None, timeout: float | None):
    from vsh.kvm import client

    rundir = running_rundir(dom)
    stream = client.events(rundir, [event] if event else None, timeout=timeout)
    return ({"event": msg.get("event"), "data": msg.get("data"), "timestamp": msg.get("timestamp")}
            for msg in stream if msg.get("event") and not msg["event"].startswith("VSH_"))   # QEMU's only


def define_image(store, path: str, xml: str, running: bool, paused: bool) -> bool:
    """Replace the XML recorded in the save image ``path`` by ``xml``, which must be
    ABI-compatible with it (libvirt's ``virDomainDefCheckABIStability``)."""
    from vsh.core.domain import Domain
    from vsh.core.errors import XMLError
    from vsh.kvm import saveimage
    from vsh.kvm.snapshot.abi import abi_difference

    if running and paused:
        raise InvalidArgument("--running and --paused are mutually exclusive")
    img = saveimage.read(path)
    old = Domain.parse(img.xml)
    new = Domain.parse(xml)
    new.fill_defaults()
    new.validate()
    if new.name != old.name:
        raise XMLError(f"unsupported configuration: Target domain name '{new.name}' does not match source "
                       f"'{old.name}'")
    if (new.uuid or "").lower() != (old.uuid or "").lower():
        raise XMLError(f"unsupported configuration: Target domain uuid {new.uuid} does not match source {old.uuid}")
    diff = abi_difference(new.node, old.node)
    if diff:
        raise Unsupported(f"unsupported configuration: {diff}")
    text = new.to_xml(inactive=True)
    state = img.running if not (running or paused) else running
    if text == img.xml and state == img.running:
        return False
    head = saveimage.header_bytes(text, state, partial=False)
    if len(head) > img.data_offset:
        raise Unsupported("operation failed: new xml too large to fit in file")
    head += b"\x00" * (img.data_offset - len(head))
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.pwrite(fd, head, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def managed_define(dom, xml: str, running: bool, paused: bool) -> bool:
    from vsh.api.local.domains import has_managed_save, managed_save_path

    if not has_managed_save(dom.store, dom.name):
        raise OperationInvalid("Requested operation is not valid: domain does not have managed save image")
    return define_image(dom.store, str(managed_save_path(dom.store, dom.name)), xml, running, paused)


def launch_security_info(dom) -> dict:
    node = dom.store.load(dom.refresh()).node
    if node.find("launchSecurity") is None:
        return {}
    running_rundir(dom)
    raise Unsupported("operation not supported: this host has no SEV or TDX support; vsh runs no "
                      "launch-security guest")


def set_launch_security_state(dom) -> None:
    running_rundir(dom)
    node = dom.store.load(dom.refresh()).node
    sec = node.find("launchSecurity")
    if sec is None or sec.get("type") != "sev":
        raise Unsupported("unsupported configuration: launch security secret setting is only supported "
                          "in SEV guests")
    raise Unsupported("operation not supported: this host has no SEV support")
