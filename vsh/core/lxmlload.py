"""Import lxml.etree without the standard-library modules it loads only to name three things.

lxml's module initialisation runs ``from typing import Generic, TypeVar`` (to make its
``ElementTree`` class subscriptable for type checkers), ``from inspect import
getfullargspec`` (used only when a custom parser target is set) and ``from gzip import
GzipFile`` (used only when compressed output is asked for). ``typing`` and ``inspect``
(with ``ast``, ``dis``, ``tokenize``) cost more to import than lxml itself: about two
thirds of ``import lxml.etree`` on the machines measured (22 ms of it under load, 9 of
which are these three). A single-shot ``vsh define`` pays it on every run.

:func:`etree` imports lxml.etree with small stand-ins for those three modules in
``sys.modules`` and removes them as soon as lxml is loaded, so every later ``import typing``
(``inspect``, ``gzip``) gets the real module:

- ``typing.Generic`` is a plain base class that ignores its subscript (``Generic[T]``), and
  ``TypeVar`` returns the name; lxml's ``ElementTree`` works the same, only the type-checker
  decoration is gone;
- ``getfullargspec`` and ``GzipFile`` import the real module on first call and hand over.

The stand-ins are used only where they are safe: a module already imported is never
shadowed, nothing is shadowed while another thread runs (it could import the stand-in), and
an lxml outside the pinned major versions, or one that asks the stand-ins for another name,
is imported the ordinary way.

``from vsh.core.lxmlload import etree`` is the one way vsh code imports lxml.etree.
"""

from __future__ import annotations

import sys

#: lxml major versions whose module-level imports from the three modules are the names below
_KNOWN_MAJORS = ("5", "6")


def _real(name: str):
    """The real standard-library module (the stand-in is gone from sys.modules by then)."""
    import importlib

    return importlib.import_module(name)


def _standins() -> dict:
    import types

    typing_ = types.ModuleType("typing", "vsh's stand-in while lxml.etree loads")

    class Generic:
        def __class_getitem__(cls, _params):
            return cls

    typing_.Generic = Generic
    typing_.TypeVar = lambda name, *constraints, **options: name

    inspect_ = types.ModuleType("inspect", "vsh's stand-in while lxml.etree loads")
    inspect_.getfullargspec = lambda func: _real("inspect").getfullargspec(func)

    gzip_ = types.ModuleType("gzip", "vsh's stand-in while lxml.etree loads")
    gzip_.GzipFile = lambda *args, **kwargs: _real("gzip").GzipFile(*args, **kwargs)
    return {"typing": typing_, "inspect": inspect_, "gzip": gzip_}


def _alone() -> bool:
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def _load():
    if "lxml.etree" not in sys.modules and _alone():
        import lxml

        if lxml.__version__.split(".")[0] in _KNOWN_MAJORS:
            shadow = {k: v for k, v in _standins().items() if k not in sys.modules}
            sys.modules.update(shadow)
            try:
                from lxml import etree as module
                return module
            except ImportError:         # a newer lxml wants more of them: the ordinary way below
                sys.modules.pop("lxml.etree", None)
            finally:
                for name, standin in shadow.items():
                    if sys.modules.get(name) is standin:
                        del sys.modules[name]
    from lxml import etree as module
    return module


def __getattr__(name: str):
    if name == "etree":
        module = _load()
        globals()["etree"] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
