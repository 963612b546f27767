"""Creating a domain from options: ``vsh install`` (virt-install's job; alias ``virt-install``).

One call describes the machine with virt-install's options, writes libvirt
domain XML, creates the disk images it names (``qemu-img create`` with an
explicit format) and a cloud-init seed if asked, defines the domain, starts it
and attaches to its console.

The work goes through ``ctx.conn.installer`` (:mod:`vsh.api.install`): ``plan``
gives the XML and the files an install would create (``--print-xml``, and with the
host's check ``--dry-run``), ``create`` creates them and defines the domain, and
``discard`` undoes that when the start fails. The options are parsed by
:mod:`vsh.core.installopts`; options that virt-install has and vsh does not take
are refused by the parser, values vsh cannot run get a clear error.
"""

from __future__ import annotations

import os
import sys

from vsh.core.errors import VshError
from vsh.core.output import Many, Message, Table, Text
from vsh.registry import Opt, command


def variant_table(variants: list[dict]) -> Table:
    rows = [[v["name"], v["label"], f"{v['memory']} MiB", f"{v['disk']} GiB", v["vcpus"], v["machine"]]
            for v in variants]
    return Table(["Name", "OS", "Memory", "Disk", "vCPUs", "Machine"], rows, json_data=variants)


def _made_messages(made: dict) -> list:
    """What ``installer.create`` made, as the lines virt-install prints."""
    from vsh.core.output import human_size

    parts: list = []
    for disk in made["new_disks"]:
        if disk.get("backing"):
            parts.append(Message(f"Disk '{disk['path']}' created ({disk['format']} over {disk['backing']})"))
        else:
            parts.append(Message(f"Disk '{disk['path']}' created ({disk['format']}, {human_size(disk['size'])})"))
    if made["seed"]:
        parts.append(Message(f"Seed '{made['seed']}' created (cloud-init NoCloud, volume id cidata)"))
    parts.append(Message(f"Domain '{made['name']}' defined"))
    return parts


def _failed(err: VshError, name: str | None) -> VshError:
    return err.with_context(f"Failed to install domain '{name}'" if name else "Failed to install a domain")


# -- the command ----------------------------------------------------------------------------------


@command("install", group="domain", summary="create a domain from options, its disks too, and start it",
         aliases=("virt-install",), mutating=True,
         opts=[Opt("name", kind="string", short="n", help="name of the new domain"),
               Opt("memory", kind="string", help="memory in MiB (N, or memory=N,currentMemory=M)"),
               Opt("vcpus", kind="string", help="vCPUs: N, then comma-separated: maxvcpus=M, sockets=S, cores=C, threads=T"),
               Opt("cpu", kind="string", help="CPU: host-passthrough, host-model, max, or a model (+feat,-feat)"),
               Opt("disk", kind="string", repeat=True,
                   help="a disk, as comma-separated keys: path=FILE, size=GiB, format=raw|qcow2, "
                        "bus=virtio|scsi|sata|ide, pool=default, device=disk|cdrom, readonly=on, "
                        "backing_store=FILE, cache=MODE (repeatable; 'none' for no disk)"),
               Opt("cdrom", kind="file", help="install media: an ISO image attached as a cdrom and booted"),
               Opt("import", kind="bool", help="boot the existing disk given with --disk (no install media)"),
               Opt("boot", kind="string",
                   help="comma-separated: kernel=FILE, initrd=FILE, kernel_args=TEXT; uefi; "
                        "hd, cdrom, network (boot order); menu=on"),
               Opt("network", kind="string", repeat=True,
                   help="user (default) or none, then comma-separated: model=virtio|e1000|e1000e, "
                        "mac=ADDR, portforward=[ADDR:]HOSTPORT:GUESTPORT[/tcp|udp] (repeatable)"),
               Opt("graphics", kind="string", help="none (default) or vnc (on a private unix socket)"),
               Opt("console", kind="string", help="pty (default: serial port 0), pty,target_type=virtio, none"),
               Opt("rng", kind="string", help="virtio RNG backend: /dev/urandom (default), /dev/random, builtin, none"),
               Opt("os-variant", kind="string",
                   help="OS defaults (memory, disk size, machine): debian12, debian11, ubuntu22.04, "
                        "ubuntu24.04, fedora40, alpine3.19, generic (default); 'list' shows them"),
               Opt("virt-type", kind="enum", choices=("kvm", "qemu"),
                   help="kvm or qemu (TCG); default: what this host can run"),
               Opt("machine", kind="string", help="machine type: q35 (default), pc, microvm, or a versioned name"),
               Opt("cloud-init", kind="string",
                   help="NoCloud seed, comma-separated: user-data=FILE, meta-data=FILE, network-config=FILE; "
                        "or root-ssh-key=FILE, root-password-generate=on"),
               Opt("uuid", kind="string", help="UUID of the new domain (default: a random one)"),
               Opt("autostart", kind="bool", help="start the domain when the host boots (vsh autostart)"),
               Opt("print-xml", kind="bool", help="print the domain XML and stop (nothing is created)"),
               Opt("dry-run", kind="bool", help="check everything, create nothing"),
               Opt("noautoconsole", kind="bool", help="do not attach to the console after the start")],
         exclusive=(("print-xml", "dry-run"),),
         examples=("install --name vm1 --memory 1024 --disk size=10 --cdrom debian-12.iso",
                   "install --name c1 --os-variant debian12 --import --disk debian-12-generic-amd64.qcow2 "
                   "--cloud-init root-ssh-key=~/.ssh/id_ed25519.pub --network user,portforward=2222:22",
                   "install --name k --memory 256 --boot kernel=vmlinux,initrd=initrd.img,"
                   "kernel_args='console=ttyS0' --disk none --noautoconsole",
                   "install --os-variant list"),
         description="Describe a machine with virt-install's options; vsh writes its domain XML (which\n"
                     "validates against libvirt's schema), creates the disk images it names under the\n"
                     "images directory (qemu-img, explicit format), defines the domain, starts it and\n"
                     "attaches to its serial console when standard input and output are a terminal.\n"
                     "If a step fails, what was created for the install is removed again.\n"
                     "\n"
                     "An install method is needed: --cdrom (the disk boots first, so a blank disk falls\n"
                     "through to the install media and the installed system boots after it), --import,\n"
                     "--boot kernel=..., or --cloud-init (which implies --import). A cloud-init seed\n"
                     "is kept as NAME-cidata.iso next to the disks and stays attached as a read-only\n"
                     "cdrom, so the domain boots the same after a restart.")
def install(ctx, name=None, memory=None, vcpus=None, cpu=None, disk=(), cdrom=None, boot=None, network=(),
            graphics=None, console=None, rng=None, os_variant=None, virt_type=None, machine=None,
            cloud_init=None, uuid=None, autostart=False, print_xml=False, dry_run=False, noautoconsole=False,
            **kw):
    installer = ctx.conn.installer
    if os_variant is not None and os_variant.strip().lower() == "list":
        return variant_table(installer.os_variants())
    opts = dict(name=name, memory=memory, vcpus=vcpus, cpu=cpu, disk=list(disk), cdrom=cdrom, boot=boot,
                network=list(network) or None, graphics=graphics, console=console, rng=rng,
                os_variant=os_variant, virt_type=virt_type, machine=machine, cloud_init=cloud_init, uuid=uuid,
                import_=kw.get("import", False))
    try:
        if print_xml or dry_run:
            plan = installer.plan(opts, check=dry_run)
        else:
            made = installer.create(opts, autostart=autostart)
    except VshError as err:
        raise _failed(err, name) from None
    if print_xml:
        return Text(plan["xml"], json_data={"xml": plan["xml"]})
    if dry_run:
        lines = [Message("Dry run completed successfully: nothing was created")]
        for d in plan["disks"]:
            lines.append(Message(f"  would create disk '{d['path']}' ({d['format']})"))
        if plan["seed"]:
            lines.append(Message(f"  would create cloud-init seed '{plan['seed']}'"))
        return Many(lines, json_data={"name": plan["name"], "dry_run": True, "would_create": plan["would_create"],
                                      "xml": plan["xml"]})
    parts = _made_messages(made)
    dom = ctx.conn.lookup_domain(made["name"])
    try:
        dom.start()
        parts.append(Message(f"Domain '{dom.name}' started"))
    except BaseException as err:
        installer.discard(made)
        if isinstance(err, VshError):
            from vsh.api.install import NOTHING_KEPT

            raise _failed(err.__class__(*err.lines, hint=NOTHING_KEPT), made["name"]) from None
        raise
    data = {key: made[key] for key in ("name", "uuid", "created", "disks")}
    if made["root_password"]:
        parts.append(Text(f"Generated root password for the first boot (cloud-init): {made['root_password']}\n"))
        data["root_password"] = made["root_password"]
    if noautoconsole or ctx.json or not _terminal():
        parts.append(Message(f"Domain creation completed; connect with: vsh console {made['name']}"))
        return Many(parts, json_data=data)
    for part in parts:
        ctx.out.write(part.text(ctx.quiet))
    from vsh.ui.console import attach

    attach(ctx, dom)
    return None


def _terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno()) and os.isatty(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return False
