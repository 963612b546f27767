"""Changing a domain of the store: which definitions a change touches, the persistent one
changed atomically under the domain's lock, the running one through its supervisor.

:func:`impact` follows virsh and libvirt: ``config``, ``live``, ``current`` (live when
running, else config) and, with no flag, what the plain libvirt call does (live for
setmem, setvcpus and attach-device, current for setmaxmem and update-device).
:func:`supervisor_call` is the one place where a live change reaches the domain's
supervisor (``vsh.kvm.client``), so a missing supervisor operation gives one clear error.
"""

from __future__ import annotations

from vsh.core.errors import OperationInvalid


def impact(ref, *, live: bool = False, config: bool = False, current: bool = False,
           persistent: bool = False, default: str = "live") -> tuple[bool, bool]:
    """Which definitions a change touches: ``(live, config)``.

    ``default`` is what no flag at all means: ``"live"`` for the calls virsh
    makes without flags (virDomainSetMemory, virDomainAttachDevice...), or
    ``"current"``. ``persistent`` (attach/detach) is config, plus live when running.
    """
    no_flag = not (live or config or current or persistent)
    if persistent:
        config = True
        live = live or ref.active
    if not (live or config):
        if current or default == "current":
            live, config = (True, False) if ref.active else (False, True)
        else:
            live = True
    if live and not ref.active:
        raise OperationInvalid("Requested operation is not valid: domain is not running",
                               hint="add --config to change the configuration used at the next boot"
                               if no_flag else None)
    if config and not ref.persistent:
        raise OperationInvalid("Requested operation is not valid: "
                               "transient domains do not have any persistent config")
    return live, config


def supervisor_call(store, ref, op: str, *args, **kwargs):
    """Run ``vsh.kvm.client.<op>(rundir, *args)`` for a running domain.

    This is where live changes reach the domain's supervisor. An operation the
    client does not offer is a clear error, never a silent no-op.
    """
    from vsh.kvm import client

    fn = getattr(client, op, None)
    if fn is None:
        raise OperationInvalid(
            f"Requested operation is not valid: changing running domain '{ref.name}' needs its "
            f"supervisor's '{op}' operation, which this vsh does not have yet",
            hint="use --config to change the configuration used at the next boot")
    return fn(store.runtime_dir(ref.name), *args, **kwargs)


def check_config_change(store, ref, change) -> None:
    """Apply ``change`` to a copy of the persistent definition and check it, writing nothing.

    Called before a live change so that a change of both definitions does not stop
    half-way because the persistent one refuses it.
    """
    cfg = store.load(ref, inactive=True)
    change(cfg)
    cfg.fill_defaults()
    cfg.validate()


def change_config(store, ref, change):
    """Load the persistent definition, apply ``change``, check it, write it atomically.

    Runs under the domain's lock; on any error the stored file is left as it was.
    Returns the new definition.
    """
    with store.lock(ref.name):
        cfg = store.load(ref, inactive=True)
        change(cfg)
        cfg.fill_defaults()
        cfg.validate()
        from vsh.api.local.domains import device_addresses

        device_addresses(cfg)           # a device added gets its address, as libvirt gives it
        store.write_config(cfg)
    return cfg


def update_live_xml(ref, change) -> None:
    """Apply ``change`` to the running domain's live definition (``live.xml``), if it has one."""
    from vsh.core.domain import Domain
    from vsh.core.store import atomic_write

    live = ref.runtime.rundir / "live.xml"
    try:
        dom = Domain.parse(live.read_bytes(), "live.xml")
    except FileNotFoundError:
        return
    change(dom)
    atomic_write(live, dom.to_xml())
