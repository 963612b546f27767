"""Domain XML → QEMU command line.

``build_argv(root, host, paths)`` reads a libvirt ``<domain>`` element, only through
the typed model of ``vsh.core.domain`` (declared properties, ``Device.address``, the
device classes of each family; no XPath here), and returns the argv of the ``qemu-system-x86_64`` process that runs
it.  It is a function of its inputs plus two kinds of file checks, both about
files the XML names: that they exist (a missing disk, kernel or firmware is an
error naming the file) and, for qcow2 disks, what the image header says about
a backing file.  Everything it cannot map raises ``Unsupported``; every bad
value raises ``InvalidArgument`` (or ``NotFound`` for a missing file), with a
message that names the element.

Decisions (the supervisor relies on these):

* ``-S`` always: QEMU starts paused; the supervisor attaches to QMP, then
  sends ``cont`` (or does not, for ``start --paused``).  No guest event is
  lost between spawn and attach.
* QMP is the monitor ``charmonitor`` on a unix socket: either the path
  ``paths.qmp_socket`` (QEMU binds it) or, when ``paths.qmp_listen_fd`` is
  set, a socket the supervisor already bound and listens on (passed with
  ``pass_fds``; no race between spawn and connect, the path stays for
  re-attaching).
* Lifecycle actions: QEMU does what maps cleanly, the supervisor the rest.
  ``on_poweroff=destroy`` (default): QEMU exits on guest poweroff.
  ``restart``/``preserve``: ``-action shutdown=pause``; the supervisor gets
  SHUTDOWN and resets+continues (restart) or leaves it paused (preserve).
  ``on_reboot=restart`` (default): QEMU resets in place (RESET event).
  ``destroy``: ``-action reboot=shutdown``, so a guest reboot becomes a
  shutdown with reason ``guest-reset`` (QEMU exits, or pauses when
  on_poweroff also pauses: the supervisor looks at the reason).
  ``preserve``: ``reboot=shutdown,shutdown=pause`` (QEMU stays, paused).
  ``on_crash``: ``-action panic=shutdown`` for destroy (QEMU exits after
  GUEST_PANICKED), ``panic=pause`` for restart/preserve.  Panics are only
  seen with a ``<panic model='isa'/>`` device (pvpanic); vsh adds none.
  rename-restart and coredump-* count as restart/destroy.  No
  ``-no-shutdown`` by default.  These are the actions QEMU takes on its own
  before the supervisor attaches; the supervisor then sets ``shutdown=pause``
  with QMP ``set-action`` (QEMU waits for a supervisor, even a re-attached one).
* Serial ports and consoles: ``pty`` → ``-chardev pty`` (the supervisor
  reads the pty path with ``query-chardev``), ``file`` → ``-chardev file``,
  ``unix`` → ``-chardev socket``.  Every serial/console chardev also writes
  a ``logfile``: the primary console (serial port 0, else the first virtio
  console) writes ``paths.console_log``, the others ``<rundir>/<alias>.log``.
  ``console_chardev(root)`` names the primary console's chardev.
* Disks: ``-blockdev`` file node + format node, with the format from
  ``<driver type>`` (raw or qcow2; never probed: a missing type means raw,
  as libvirt reads it, and define writes it).  qcow2 backing chains are opened only as ``<backingStore>``
  declares them, each level with its declared format; with no
  ``<backingStore>`` the image must have no backing file (one it names is
  refused, not followed); ``<backingStore/>`` (empty) opens it with
  ``backing: null``.
* PCI: devices keep the ``<address type='pci'>`` the XML gives (buses from
  ``pcie-root-port``/``pci-bridge``/``dmi-to-pci-bridge`` controllers); the
  others get the root-bus address libvirt would give them (``slots``: the
  chipset's places first, then libvirt's order), so the command line is
  deterministic and a ``virsh dumpxml`` of a pc guest keeps its layout.
* VNC always listens on a unix socket in the run directory (never TCP).
* Machine: ``<os><type machine>`` as given (pc, q35, microvm and their
  versioned names), q35 when absent.  ACPI only with ``<features><acpi/>``,
  as libvirt does.  TCG runs one thread per vCPU by default; nothing added.

The modules, one concern each: ``options`` (QEMU's option syntax, value
checks), ``paths`` (RuntimePaths), ``pci`` (the PCI address book),
``slots`` (libvirt's address plan), ``builder`` (the state one build carries), ``machine`` (accelerator, machine,
CPU, memory, vCPUs, monitor, clock, lifecycle actions), ``boot`` (firmware,
kernel, boot order), ``controllers``, ``disks`` (with ``images``, the qcow2
header checks), ``network``, ``chardevs``, ``graphics`` (VNC, video, input), ``sound``, ``smbios``,
``filesystems`` (9p shares), ``numa`` (guest NUMA cells), ``tpm`` (TPMs),
``devices`` (rng, balloon, watchdog, panic, host PCI devices) and ``build``,
which composes them: each device handler gets the device's model object
(``vsh.core.domain.device_for``).  ``addresses`` (with ``q35`` over ``pcie``) writes the
addresses a define gives, through ``Device.set_address``.
"""

from __future__ import annotations

from vsh.kvm.argv.build import build_argv, device_options
from vsh.kvm.argv.builder import DEFAULT_MACHINE
from vsh.kvm.argv.chardevs import console_chardev
from vsh.kvm.argv.custom import custom_commandline
from vsh.kvm.argv.images import qcow2_backing_file, qcow2_data_file
from vsh.kvm.argv.machine import hotplugged_vcpus
from vsh.kvm.argv.network import check_host_ports
from vsh.kvm.argv.options import split_opts
from vsh.kvm.argv.paths import RuntimePaths

__all__ = ["RuntimePaths", "build_argv", "console_chardev", "DEFAULT_MACHINE", "check_host_ports",
           "device_options", "hotplugged_vcpus", "split_opts", "qcow2_backing_file", "qcow2_data_file"]
