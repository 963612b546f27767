"""The local driver: which definitions a change touches (live, config), and changing the
persistent one safely."""

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
        store.write_config(cfg)
    return cfg
