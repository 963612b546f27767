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

from vsh.core.errors import InvalidArgument, NotFound, VshError
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
    if not made.get("transient"):
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
               Opt("location", kind="file",
                   help="install media whose kernel and initrd are booted: an ISO image, an install tree "
                        "directory or its http(s)/ftp URL (,kernel=PATH,initrd=PATH inside it)"),
               Opt("extra-args", kind="string", help="kernel command line of the --location install run"),
               Opt("initrd-inject", kind="file", repeat=True,
                   help="a file put into the root of the --location initrd (a preseed or kickstart file)"),
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
               Opt("filesystem", kind="string", repeat=True,
                   help="a host directory shared with the guest over 9p: SOURCE,TARGET or "
                        "source=DIR,target=TAG[,accessmode=passthrough|mapped|squash][,readonly=on]"),
               Opt("channel", kind="string", repeat=True,
                   help="a virtio channel: unix|pty,target.type=virtio,name=NAME, or none; without it, "
                        "an --osinfo other than generic gets the guest agent's (unix,name=org.qemu.guest_agent.0)"),
               Opt("video", kind="string", repeat=True, help="video device: vga, virtio, qxl, bochs, ramfb, none"),
               Opt("tpm", kind="string", repeat=True,
                   help="TPM: emulator (swtpm), /dev/tpmN (passthrough), none, or "
                        "model=tpm-crb|tpm-tis,backend.type=...,backend.version=2.0"),
               Opt("sound", kind="string", repeat=True, help="sound device: ich9 (default), ich6, ac97, es1370, none"),
               Opt("watchdog", kind="string", repeat=True,
                   help="watchdog: i6300esb|ib700|itco[,action=reset|shutdown|poweroff|pause|none|dump|inject-nmi]"),
               Opt("controller", kind="string", repeat=True,
                   help="controller: usb2, usb3, virtio-scsi, or type=usb|scsi|virtio-serial,model=M[,index=N]"),
               Opt("input", kind="string", repeat=True, help="input device: tablet, mouse, keyboard[,bus=usb|ps2|virtio]"),
               Opt("memballoon", kind="string", help="memory balloon: virtio (default) or none"),
               Opt("serial", kind="string", repeat=True,
                   help="one more serial port: pty, file,path=FILE, unix,path=SOCKET[,mode=bind|connect], null"),
               Opt("panic", kind="string", repeat=True, help="panic notifier: isa (pvpanic, default), hyperv..."),
               Opt("events", kind="string", repeat=True,
                   help="lifecycle actions: on_poweroff=, on_reboot=, on_crash= (destroy, restart, preserve...)"),
               Opt("metadata", kind="string", repeat=True, help="title=TEXT,description=TEXT"),
               Opt("description", kind="string", help="the domain's description (its text as given)"),
               Opt("features", kind="string", repeat=True,
                   help="hypervisor features: acpi=on|off, apic=, pae=, pmu=, vmport=, smm=, kvm_hidden=on..."),
               Opt("clock", kind="string", repeat=True, help="offset=utc|localtime|timezone|variable[,timezone=ZONE]"),
               Opt("memorybacking", kind="string", repeat=True,
                   help="hugepages=on, source.type=memfd|file|anonymous, access.mode=shared|private, locked=on"),
               Opt("iothreads", kind="string", repeat=True, help="the number of I/O threads"),
               Opt("xml", kind="string", repeat=True,
                   help="edit the XML: ./XPATH=VALUE (attribute or text, made if missing), "
                        "xpath.delete=./XPATH, xpath.create=./XPATH"),
               Opt("os-variant", kind="string",
                   help="OS defaults (memory, disk size, machine): debian12, debian11, ubuntu22.04, "
                        "ubuntu24.04, fedora40, alpine3.19, generic (default); 'list' shows them"),
               Opt("osinfo", kind="string", help="the same as --os-variant (virt-install 4's name for it)"),
               Opt("virt-type", kind="enum", choices=("kvm", "qemu"),
                   help="kvm or qemu (TCG); default: what this host can run"),
               Opt("machine", kind="string", help="machine type: q35 (default), pc, microvm, or a versioned name"),
               Opt("cloud-init", kind="string",
                   help="NoCloud seed, comma-separated: user-data=FILE, meta-data=FILE, network-config=FILE; "
                        "or root-ssh-key=FILE, root-password-generate=on"),
               Opt("uuid", kind="string", help="UUID of the new domain (default: a random one)"),
               Opt("autostart", kind="bool", help="start the domain when the host boots (vsh autostart)"),
               Opt("transient", kind="bool", help="create a transient domain: nothing is defined"),
               Opt("wait", kind="int", metavar="minutes",
                   help="wait this many minutes (negative: without limit) for the install run to end "
                        "(the guest shuts down or reboots), then boot the installed system"),
               Opt("noreboot", kind="bool", help="with --wait: do not boot the installed system afterwards"),
               Opt("print-xml", kind="bool", help="print the domain XML and stop (nothing is created)"),
               Opt("dry-run", kind="bool", help="check everything, create nothing"),
               Opt("noautoconsole", kind="bool", help="do not attach to the console after the start"),
               Opt("autoconsole", kind="enum", choices=("text", "none"),
                   help="text (the serial console, when on a terminal) or none (as --noautoconsole)")],
         exclusive=(("print-xml", "dry-run"), ("os-variant", "osinfo"), ("transient", "autostart"),
                    ("noautoconsole", "autoconsole")),
         examples=("install --name vm1 --memory 1024 --disk size=10 --cdrom debian-12.iso",
                   "install --name c1 --os-variant debian12 --import --disk debian-12-generic-amd64.qcow2 "
                   "--cloud-init root-ssh-key=~/.ssh/id_ed25519.pub --network user,portforward=2222:22",
                   "install --name k --memory 256 --boot kernel=vmlinux,initrd=initrd.img,"
                   "kernel_args='console=ttyS0' --disk none --noautoconsole",
                   "install --name deb --memory 1024 --disk size=10 --location debian-12-netinst.iso "
                   "--initrd-inject preseed.cfg --extra-args 'auto=true priority=critical' --wait -1",
                   "install --os-variant list"),
         description="Describe a machine with virt-install's options; vsh writes its domain XML (which\n"
                     "validates against libvirt's schema), creates the disk images it names under the\n"
                     "images directory (qemu-img, explicit format), defines the domain, starts it and\n"
                     "attaches to its serial console when standard input and output are a terminal.\n"
                     "If a step fails, what was created for the install is removed again.\n"
                     "\n"
                     "An install method is needed: --cdrom (the disk boots first, so a blank disk falls\n"
                     "through to the install media and the installed system boots after it), --location\n"
                     "(the media's kernel and initrd boot once, with --extra-args, console=ttyS0 added\n"
                     "without graphics; the install run ends at the installer's reboot and the domain\n"
                     "then boots its disk, the install ISO ejected), --import, --boot kernel=..., or\n"
                     "--cloud-init (which implies --import). A cloud-init seed\n"
                     "is kept as NAME-cidata.iso next to the disks and stays attached as a read-only\n"
                     "cdrom, so the domain boots the same after a restart.")
def install(ctx, name=None, memory=None, vcpus=None, cpu=None, disk=(), cdrom=None, boot=None, network=(),
            graphics=None, console=None, rng=None, os_variant=None, virt_type=None, machine=None,
            cloud_init=None, uuid=None, autostart=False, print_xml=False, dry_run=False, noautoconsole=False,
            location=None, extra_args=None, initrd_inject=(), osinfo=None, transient=False, wait=None,
            noreboot=False, memballoon=None, description=None, autoconsole=None, **kw):
    installer = ctx.conn.installer
    os_variant = os_variant if osinfo is None else osinfo
    if os_variant is not None and os_variant.strip().lower() == "list":
        return variant_table(installer.os_variants())
    if noreboot and wait is None:
        raise InvalidArgument("--noreboot goes with --wait (vsh does not wait for the install otherwise)")
    opts = dict(name=name, memory=memory, vcpus=vcpus, cpu=cpu, disk=list(disk), cdrom=cdrom, boot=boot,
                network=list(network) or None, graphics=graphics, console=console, rng=rng,
                os_variant=os_variant, virt_type=virt_type, machine=machine, cloud_init=cloud_init, uuid=uuid,
                import_=kw.get("import", False), location=location, extra_args=extra_args,
                initrd_inject=list(initrd_inject), memballoon=memballoon, description=description,
                **{key: list(kw.get(key) or ()) for key in DEVICE_KEYS + DOMAIN_KEYS})
    noautoconsole = noautoconsole or autoconsole == "none"
    try:
        if print_xml or dry_run:
            plan = installer.plan(opts, check=dry_run)
        else:
            made = installer.create(opts, autostart=autostart, transient=transient)
    except VshError as err:
        raise _failed(err, name) from None
    if print_xml:      # as virt-install: the install run's XML first when it differs
        text = (plan["install_xml"] or "") + plan["xml"]
        return Text(text, json_data={"xml": plan["xml"], "install_xml": plan["install_xml"]})
    if dry_run:
        lines = [Message("Dry run completed successfully: nothing was created")]
        for d in plan["disks"]:
            lines.append(Message(f"  would create disk '{d['path']}' ({d['format']})"))
        if plan["seed"]:
            lines.append(Message(f"  would create cloud-init seed '{plan['seed']}'"))
        return Many(lines, json_data={"name": plan["name"], "dry_run": True, "would_create": plan["would_create"],
                                      "xml": plan["xml"], "install_xml": plan["install_xml"]})
    parts = _made_messages(made)
    try:
        installer.start(made)
    except VshError as err:
        raise _failed(err, made["name"]) from None
    parts.append(Message(f"Domain '{made['name']}' started"))
    data = {key: made[key] for key in ("name", "uuid", "created", "disks", "transient")}
    if made["root_password"]:
        parts.append(Text(f"Generated root password for the first boot (cloud-init): {made['root_password']}\n"))
        data["root_password"] = made["root_password"]
    console = not (noautoconsole or ctx.json or not _terminal())
    if wait is None and not console:
        import shlex

        via = f"-c {shlex.quote(ctx.uri)} " if ctx.uri else ""     # the connection it was made on
        parts.append(Message(f"Domain creation completed; connect with: vsh {via}console "
                             f"{shlex.quote(made['name'])}"))
        return Many(parts, json_data=data)
    for part in parts:
        ctx.out.write(part.text(ctx.quiet))
    if console:
        from vsh.ui.console import attach

        attach(ctx, ctx.conn.lookup_domain(made["name"]))
    if wait is None:
        return None
    return _wait_install(ctx, made, wait, noreboot, data)


DEVICE_KEYS = ("filesystem", "channel", "video", "tpm", "sound", "watchdog", "controller", "input")
DOMAIN_KEYS = ("serial", "panic", "events", "metadata", "features", "clock", "memorybacking", "iothreads", "xml")
POLL = 0.5


def _wait_install(ctx, made: dict, minutes: int, noreboot: bool, data: dict):
    """virt-install's --wait: until the install run ends (the domain is shut off), then the
    installed system boots (unless --noreboot, or the domain is transient)."""
    import time

    name = made["name"]
    ctx.out.write(Message("Waiting for the installation to complete." if minutes < 0 else
                          f"Waiting {minutes} minutes for the installation to complete.").text(ctx.quiet))
    ctx.out.flush()
    deadline = None if minutes < 0 else time.monotonic() + minutes * 60
    while True:
        try:
            state, _reason = ctx.conn.lookup_domain(name).state()
        except NotFound:        # a transient domain is gone when it stops
            state = "shut off"
        if state == "shut off":
            break
        if deadline is not None and time.monotonic() >= deadline:
            raise VshError("installation has exceeded the specified time limit",
                           hint=f"the domain is still running: vsh console {name}, or vsh destroy {name}")
        time.sleep(POLL)
    lines = [Message("Domain has shutdown. Continuing.")]
    data["waited"] = True
    if not noreboot and not made["transient"]:
        ctx.conn.lookup_domain(name).start()
        lines.append(Message(f"Domain '{name}' started (installed system)"))
        data["restarted"] = True
    lines.append(Message("Domain creation completed."))
    return Many(lines, json_data=data)


def _terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno()) and os.isatty(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return False
