"""Sub-handles of the local driver's handles, made on first use."""

from __future__ import annotations


def sub_handle(owner, key: str, module: str, cls: str):
    """``owner``'s sub-handle ``key`` (an instance of ``module.cls`` made with ``owner``), made
    and its module imported on first use: a command imports only the families it uses."""
    cache = owner.__dict__.setdefault("_sub_handles", {})
    handle = cache.get(key)
    if handle is None:
        from importlib import import_module

        handle = cache[key] = getattr(import_module(module), cls)(owner)
    return handle
