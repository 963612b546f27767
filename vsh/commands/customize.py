"""vsh customize (virt-customize): change a guest's disks in place, in the appliance VM.

The options carry virt-customize's names; the operations run in this order: --hostname,
--timezone, --mkdir, --write, --append-line, --upload, --copy-in, --delete, --chmod, --link,
--root-password, --password, --ssh-inject, --update, --install, --firstboot, --firstboot-command,
--run-command (each repeated option in the order given), then a new random seed and, when
/etc/machine-id is empty, a machine id, as virt-customize does. --install and --update run the
guest's own package manager inside the guest; the appliance has a network only with --network
(virt-customize's default is the other way round), so without it apt refreshes only local
sources (file:) and a package no local source has is an error.
"""

from __future__ import annotations

import time

from vsh.api.customize import check_steps
from vsh.core.errors import InvalidArgument, VshError
from vsh.core.escape import escape
from vsh.core.output import Lines
from vsh.registry import Opt, command

ORDER = ("hostname", "timezone", "mkdir", "write", "append-line", "upload", "copy-in", "delete", "chmod", "link",
         "root-password", "password", "ssh-inject", "update", "install", "firstboot", "firstboot-command",
         "run-command")
SINGLE = ("hostname", "timezone", "root-password")
HELP = {
    "hostname": "set the hostname", "timezone": "set the timezone (Europe/Paris)",
    "mkdir": "make a directory (and its parents)", "write": "FILE:CONTENT: write a file",
    "append-line": "FILE:LINE: append a line to a file", "upload": "HOSTFILE:DEST: upload a file",
    "copy-in": "LOCALPATH:REMOTEDIR: copy files or trees in", "delete": "delete a file or tree",
    "chmod": "PERMISSIONS:FILE: change permissions (octal)", "link": "TARGET:LINK[:LINK...]: symbolic links",
    "root-password": "root's password: password:PASS, file:FILE, random, disabled",
    "password": "USER:SELECTOR: a user's password (as --root-password)",
    "ssh-inject": "USER:file:KEYFILE or USER:string:KEY: add an authorized ssh key",
    "firstboot": "a script to run at the guest's first boot",
    "firstboot-command": "a command to run at the guest's first boot",
    "run-command": "run a command inside the guest (its own /bin/sh; network only with --network)",
    "install": "PKG[,PKG...]: install packages with the guest's package manager",
    "update": "update every package with the guest's package manager"}


@command("customize", group="guest", summary="virt-customize: change a guest's disks in place",
         aliases=("virt-customize",), mutating=True,
         opts=[Opt("add", kind="file", short="a", repeat=True, help="disk image (repeatable)"),
               Opt("domain", kind="domain", short="d", help="the disks of this domain (shut off)"),
               Opt("format", kind="enum", choices=("raw", "qcow2", "vmdk", "vhdx", "vpc"),
                   help="format of the -a disk images"),
               Opt("quiet", kind="bool", short="q", help="print nothing but errors"),
               Opt("network", kind="bool", help="give the appliance QEMU's user networking (for --install, "
                                                "--update, --run-command)")] +
              [Opt(name, kind="bool" if name == "update" else "string", repeat=name not in SINGLE + ("update",),
                   help=HELP[name]) for name in ORDER],
         examples=("customize -a disk.qcow2 --format qcow2 --hostname web1 --root-password password:s3cret",
                   "customize -d vm1 --ssh-inject root:file:/root/.ssh/id_ed25519.pub"))
def customize(ctx, add=(), domain=None, format=None, quiet=False, network=False, **ops):
    steps = []
    for name in ORDER:
        value = ops.get(name.replace("-", "_"))
        if value is None or value is False:
            continue
        if value is True:
            value = ""
        steps += [(name, v) for v in (value if isinstance(value, list) else [value])]
    check_steps(steps)
    if not add and not domain:
        raise InvalidArgument("customize: no disk given", hint="use -a DISK or -d DOMAIN")
    start = time.monotonic()
    msgs = ["Examining the guest ..."]
    g = ctx.conn.guest_disks(readonly=False)
    g.set_network(network)
    try:
        for path in [add] if isinstance(add, str) else add or ():
            g.add_drive(path, format)
        if domain:
            g.add_domain(domain)
        g.launch()
        g.mount_inspected()
        msgs += g.customize(steps)
        g.close()
    except VshError:
        g.close()
        raise
    if quiet:
        return None
    took = time.monotonic() - start
    return Lines([f"[{took:6.1f}] {escape(m)}" for m in msgs], json_data={"messages": msgs})
