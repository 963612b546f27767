"""The local driver's one way to run a domain: build QEMU's argv and start it under a
supervisor. start, create, restore, managed-save resume and snapshot revert all come
through :func:`launch`.
"""

from __future__ import annotations

import os

from vsh.core.errors import VshError


def lifecycle_actions(dom) -> dict:
    """The ``on_poweroff`` / ``on_reboot`` / ``on_crash`` actions the supervisor carries out."""
    return {"on_poweroff": dom.on_poweroff or "destroy", "on_reboot": dom.on_reboot or "restart",
            "on_crash": dom.on_crash or "destroy"}


def launch(store, dom, *, transient: bool, paused: bool, extra_argv=(), first_run: dict | None = None,
           reset_nvram: bool = False, fd_groups: dict | None = None) -> dict:
    """Build QEMU's argv for ``dom`` (a :class:`vsh.core.domain.Domain`) and start it under a
    supervisor; the runtime state.

    ``extra_argv`` and ``first_run`` serve restore and snapshot revert (arguments for this
    first run only, e.g. ``-incoming defer``). ``fd_groups`` (name → descriptors, see
    :mod:`vsh.api.local.fdgroups`) serve the disks whose source names an fd group.
    """
    from vsh.api.local.fdgroups import fdsets
    from vsh.api.local.threads import apply_tuning, check_cputune
    from vsh.kvm import client
    from vsh.kvm.argv import custom_commandline, hotplugged_vcpus

    from vsh.api.local.starttune import cgroup_plan, memory_policy, perf_events

    rundir = store.runtime_path(dom.name)
    check_cputune(dom)
    mempolicy = memory_policy(dom)      # refuses the tunables vsh cannot apply, before anything runs
    limits = cgroup_plan(dom)
    live = dom.copy()
    taps = plan_taps(store, live)       # network/bridge NICs: bridge and tap names in the live XML
    prepare_firmware(store, live, reset_nvram)  # firmware='efi': the firmware chosen, the nvram from its template
    sets, add_fd, pass_fds = fdsets(fd_groups or {}, live.node)
    argv = build_argv(live, rundir, sets) + list(extra_argv)  # a missing disk or kernel fails before anything is created
    argv[1:1] = add_fd
    custom = custom_commandline(live.node)      # <qemu:commandline>: its args are in argv already
    created = not os.path.isdir(rundir)
    store.runtime_path(dom.name, create=True)
    domid = store.next_id()
    live.id = domid
    name_vnc_sockets(live, rundir)
    try:
        state = client.start(rundir, dom.name, domid, argv, live.to_xml(), lifecycle=lifecycle_actions(dom),
                             transient=transient, paused=paused, uuid=dom.uuid, first_run=first_run or None,
                             taps=taps, balloon_kib=balloon_target(live), vcpus_hotplug=hotplugged_vcpus(live.node),
                             swtpm=swtpm_plan(store, live, rundir), mempolicy=mempolicy, cgroup_tune=limits,
                             perf=perf_events(dom), pass_fds=pass_fds,
                             env=custom[1], tainted=["custom-argv"] if any(custom) else None)
    except VshError:
        if created:
            try:
                os.rmdir(rundir)        # refused before anything was written: leave nothing
            except OSError:
                pass
        raise
    apply_tuning(store, store.get(dom.name), live)
    return state


def tpm_state_dir(store, uuid: str, version: str) -> str:
    """Where an emulated TPM keeps its state between runs (libvirt: swtpm/UUID/tpm2 or tpm1.2)."""
    return store.data_file("swtpm", uuid, "tpm2" if version == "2.0" else "tpm1.2")


def swtpm_plan(store, live, rundir) -> list[dict]:
    """The swtpm each emulated TPM of ``live`` needs (socket, version, state, log), for the supervisor."""
    if live.node.find("devices/tpm") is None:
        return []
    from vsh.core.store import ensure_private_dir
    from vsh.kvm.argv import RuntimePaths
    from vsh.kvm.argv.tpm import emulators

    plan = emulators(live.node, RuntimePaths.for_rundir(str(rundir)))
    ensure_private_dir(store.data_file("swtpm"))
    for n, tpm in enumerate(plan):
        tpm["state"] = tpm_state_dir(store, live.uuid, tpm["version"])
        tpm["log"] = os.path.join(rundir, f"tpm{n}-swtpm.log")
    return plan


def default_nvram(store, name: str) -> str:
    """Where a domain's UEFI variable store lives when its XML names none (libvirt: NAME_VARS.fd
    in its nvram directory)."""
    return store.data_file("nvram", f"{name}_VARS.fd")


def prepare_firmware(store, live, reset: bool = False) -> None:
    """Resolve ``<os firmware='efi'>`` in the live XML from QEMU's firmware descriptors and create
    the nvram from its template where it does not exist yet, or anew with ``reset``
    (vsh.kvm.host.firmware)."""
    os_ = live.node.find("os")
    if os_ is None or (os_.get("firmware") is None and os_.find("nvram[@template]") is None):
        return
    from vsh.kvm.argv import DEFAULT_MACHINE
    from vsh.kvm.host import probe
    from vsh.kvm.host.firmware import fill

    machine = live.os_machine or DEFAULT_MACHINE
    known = probe().machine(machine)
    fill(live.node, known.name if known is not None else machine, default_nvram(store, live.name), reset=reset)


def name_vnc_sockets(live, rundir) -> None:
    """Name the unix socket of each VNC display in the live XML, as libvirt does
    (``<listen type='socket' socket='RUNDIR/vnc.sock'/>``): where the argv builder put it."""
    from vsh.api.local.display import VNC_SOCKET

    for el in live.node.findall("./devices/graphics[@type='vnc']"):
        if el.get("socket") or el.find("listen[@type='socket']") is not None:
            continue
        from vsh.core.lxmlload import etree

        for old in el.findall("listen"):
            el.remove(old)
        el.set("socket", os.path.join(rundir, VNC_SOCKET))
        el.insert(0, etree.Element("listen", type="socket", socket=el.get("socket")))


def balloon_target(dom) -> int | None:
    """The balloon target to set at start: ``<currentMemory>`` when below ``<memory>`` and the
    domain has a balloon device (libvirt's rule), else None."""
    cur, mem = dom.current_memory, dom.memory
    if not cur or not mem or cur >= mem:
        return None
    bal = dom.node.find("./devices/memballoon")
    if bal is None or bal.get("model") == "none":
        return None
    return cur


def plan_taps(store, live) -> list[dict]:
    """The tap devices of ``live``'s network and bridge NICs (their names go into ``live``)."""
    if not any(nic.type in ("network", "bridge") for nic in live.interfaces):
        return []
    from vsh.kvm import hostnet

    return hostnet.plan_taps(store, live, hostnet.running_taps(store))


def build_argv(dom, rundir, fdsets: dict | None = None) -> list[str]:
    """QEMU's argv for ``dom`` with its runtime files in ``rundir`` (the host probe is cached);
    ``fdsets``: fd group → QEMU fd set, for disks whose source names a group."""
    try:
        from vsh.kvm.argv import RuntimePaths, build_argv as build
        from vsh.kvm.host import probe
    except ImportError as exc:
        raise VshError(f"internal error: the QEMU command-line builder is unavailable: {exc}") from None
    make_paths = getattr(RuntimePaths, "in_dir", None) or RuntimePaths.for_rundir
    argv = build(dom.node, probe(), make_paths(str(rundir)), fdsets=fdsets)
    from vsh.kvm.argv import check_host_ports

    check_host_ports(dom.node)  # user-mode port forwards: a taken host port fails here, clearly
    return argv
