"""libvirt's QEMU namespace: ``<qemu:commandline>`` (``xmlns:qemu=
'http://libvirt.org/schemas/domain/qemu/1.0'``) passes ``<qemu:arg value>`` to QEMU after
everything vsh generates and ``<qemu:env name value>`` into its environment.  As in
libvirt the domain is then *tainted* (``custom-argv``): the supervisor writes so in the
domain's ``qemu.log`` at each start.  The arguments run inside the same confinement.
"""

from __future__ import annotations

import re

from vsh.core.errors import InvalidArgument

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def custom_commandline(root) -> tuple[list[str], dict]:
    """The ``<qemu:arg>`` values and ``<qemu:env>`` pairs of the domain element ``root``."""
    from vsh.core.domain import Domain

    return commandline(Domain(root))


def commandline(dom) -> tuple[list[str], dict]:
    """The ``<qemu:arg>`` values and ``<qemu:env>`` pairs of the domain model ``dom``."""
    args: list[str] = []
    env: dict = {}
    for kind, name, value in dom.qemu_commandline:
        if kind == "arg":
            if value is None:
                raise InvalidArgument("<qemu:arg> needs a value attribute")
            args.append(value)
        else:
            name = name or ""
            if not _ENV_NAME.fullmatch(name):
                raise InvalidArgument(f"invalid environment variable name '{name}' in <qemu:env>")
            env[name] = value or ""
    return args, env
