"""The libvirt binding as this driver uses it: ``libvirtmod``, the C extension of libvirt-python.

The ``libvirt`` module of libvirt-python is a generated wrapper over ``libvirtmod`` whose import
costs ~50 ms (it imports ``typing`` and defines a few hundred classes); ``libvirtmod`` alone costs
what linking libvirt costs, as it does for virsh. The wrapper's methods are one call each, so this
driver calls the extension directly through :func:`call`, which turns libvirt's failures into
:class:`~vsh.core.errors.VshError` subclasses carrying libvirt's own message.
"""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, NotFound, OperationInvalid, Timeout, Unsupported, VshError, XMLError

_mod = None


def mod():
    """The ``libvirtmod`` extension, imported (lazily bound: faster to load) on first use."""
    global _mod
    if _mod is None:
        import os
        import sys

        flags = sys.getdlopenflags()
        sys.setdlopenflags(os.RTLD_LAZY | os.RTLD_GLOBAL)
        try:
            import libvirtmod
        except ImportError as err:
            raise Unsupported("failed to connect to the hypervisor",
                              f"the libvirt Python binding is not installed ({err}); scripts/setup installs "
                              "libvirt-python") from None
        finally:
            sys.setdlopenflags(flags)
        # libvirt prints every error on stderr unless a handler takes them: errors reach the user once,
        # through VshError
        libvirtmod.virRegisterErrorHandler(_quiet, None)
        _mod = libvirtmod
    return _mod


def _quiet(_ctx, _err) -> None:
    return None


# virErrorNumber -> the VshError subclass a command expects
_CLASSES = {
    3: Unsupported,         # VIR_ERR_NO_SUPPORT
    7: NotFound,            # VIR_ERR_INVALID_DOMAIN
    8: InvalidArgument,     # VIR_ERR_INVALID_ARG
    27: XMLError,           # VIR_ERR_XML_ERROR
    28: OperationInvalid,   # VIR_ERR_DOM_EXIST
    35: XMLError,           # VIR_ERR_XML_DETAIL
    42: NotFound,           # VIR_ERR_NO_DOMAIN
    43: NotFound,           # VIR_ERR_NO_NETWORK
    49: NotFound,           # VIR_ERR_NO_STORAGE_POOL
    50: NotFound,           # VIR_ERR_NO_STORAGE_VOL
    53: NotFound,           # VIR_ERR_NO_NODE_DEVICE
    55: OperationInvalid,   # VIR_ERR_OPERATION_INVALID
    67: Unsupported,        # VIR_ERR_CONFIG_UNSUPPORTED
    68: Timeout,            # VIR_ERR_OPERATION_TIMEOUT
    72: NotFound,           # VIR_ERR_NO_DOMAIN_SNAPSHOT
    74: Unsupported,        # VIR_ERR_ARGUMENT_UNSUPPORTED
    80: NotFound,           # VIR_ERR_NO_DOMAIN_METADATA
    84: Unsupported,        # VIR_ERR_OPERATION_UNSUPPORTED
}




def last_error(*context: str) -> VshError:
    """libvirt's last error of this thread as a VshError (its class by libvirt's error number), after
    ``context`` (virsh's first lines)."""
    err = mod().virGetLastError()
    if err is None:
        return VshError(*context, "an error occurred, but the cause is unknown")
    cls = _CLASSES.get(err[0], VshError)
    out = cls(*context, err[2])
    out.code = err[0]
    return out


def call(name: str, *args, context: tuple = (), fails=(None, -1)):
    """``libvirtmod.name(*args)``; a result in ``fails`` with an error set raises :func:`last_error`."""
    m = mod()
    m.virResetLastError()
    ret = getattr(m, name)(*args)
    if (ret is None or (type(ret) is int and ret in fails)) and m.virGetLastError() is not None:
        raise last_error(*context)
    return ret


def code_of(err: VshError) -> int:
    """libvirt's error number of an error :func:`last_error` made (0 for another error)."""
    return getattr(err, "code", 0)


def unsupported(api: str) -> Unsupported:
    """libvirt's error for a driver without ``api``."""
    return Unsupported(f"this function is not supported by the connection driver: {api}")
