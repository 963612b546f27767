"""Creating domains from media (virt-install): plan the XML and the disks, then define.

Owned by the install concern (``vsh/commands/install.py``). ``conn.installer`` is an
:class:`Installer`. Its methods take virt-install's options as one dict of plain
values, the text of each option as given on the command line:

``name``, ``memory``, ``vcpus``, ``cpu``, ``cdrom``, ``location``, ``extra_args``, ``boot``,
``graphics``, ``console``, ``rng``, ``memballoon``, ``os_variant``, ``virt_type``, ``machine``,
``cloud_init``, ``uuid``, ``description``: str or None; ``disk``, ``network``,
``initrd_inject``, ``filesystem``, ``channel``, ``video``, ``tpm``, ``sound``, ``watchdog``,
``controller``, ``input``, ``serial``, ``panic``, ``events``, ``metadata``, ``features``,
``clock``, ``memorybacking``, ``iothreads``, ``xml``: lists of str (``network`` None for the default, user-mode networking);
``import_``: bool (``--import``); ``cloud_account``: None or a dict (the web console's cloud-init
fields, no command-line option) with ``user`` (an account to make, with sudo rights; default root),
``password`` and ``ssh_keys`` (public keys, one a line), given as text instead of in files.

Paths in the options (disks, install media, kernels, cloud-init files) name files on
the host the driver runs on. Starting the new domain is the caller's next step
(:meth:`Installer.start`), which undoes the install if the start fails.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

#: The hint of an install that failed after it created something: all of it is gone again.
NOTHING_KEPT = "nothing was kept: the definition and the files made for it are removed"


def check_create_flags(autostart: bool, transient: bool) -> None:
    """:meth:`Installer.create`'s refusal of ``transient`` with ``autostart``."""
    from vsh.core.errors import InvalidArgument

    if transient and autostart:
        raise InvalidArgument("--transient and --autostart cannot go together: a transient domain "
                              "is gone when it stops")


class Installer(ABC):
    """Creating domains from media (virt-install): plan the XML and the disks, then define."""

    def os_variants(self) -> list[dict]:
        """The OS table of ``--os-variant``, in its order: one dict per OS with ``name``, ``label``,
        ``memory`` (MiB), ``disk`` (GiB), ``vcpus``, ``machine``, ``disk_bus``, ``nic_model`` (the
        same on every driver)."""
        from vsh.core.installopts import OS_VARIANTS

        return [v._asdict() for v in OS_VARIANTS.values()]

    @abstractmethod
    def plan(self, options: dict, check: bool = False) -> dict:
        """What an install with ``options`` would do, creating nothing (``--print-xml``): a dict with
        ``name``, ``uuid``, ``xml`` (the inactive domain XML), ``disks`` (the images to create, each
        ``path``, ``format``, ``size`` in bytes or None, ``backing``, ``backing_format``), ``seed`` and
        ``nvram`` (the paths of the cloud-init seed and UEFI variable store to create, or None),
        ``install_xml`` (the XML of the install run when it differs from the domain's:
        ``--location``; else None), ``boot_files`` (where its kernel and initrd are copied),
        ``would_create`` (every path to create) and ``root_password`` (generated for cloud-init, or
        None). With ``check`` (``--dry-run``) it also refuses a name in use (OperationInvalid
        ``domain 'x' already exists``), a domain this host cannot run (the errors starting it would
        give) and port forwards whose host ports are taken. Bad options raise InvalidArgument,
        NotFound or Unsupported naming the option."""

    @abstractmethod
    def create(self, options: dict, autostart: bool = False, transient: bool = False) -> dict:
        """Plan and check as :meth:`plan` with ``check``, then create the disk images, the UEFI
        variable store and the cloud-init seed, copy out the kernel and initrd of ``--location``
        media (with ``--initrd-inject`` files appended), define the domain (unless ``transient``:
        then nothing is defined and :meth:`start` creates a transient domain) and mark it
        ``autostart``; the domain is not started. Returns what was made: ``name``, ``uuid``,
        ``created`` (the paths created, in order), ``disks`` (the sources of every disk of the
        domain), ``new_disks`` (the images created, as in :meth:`plan`), ``seed`` (its path, or
        None), ``root_password``, ``xml`` (the domain's XML), ``install_xml`` (the XML of the
        install run when it differs: ``--location``; else None), ``boot_files`` (the copied
        kernel and initrd) and ``transient``. If a step fails, what was made is removed again and
        the error is raised, its hint :data:`NOTHING_KEPT` when something had been made.
        ``transient`` with ``autostart`` is InvalidArgument."""

    @abstractmethod
    def start(self, made: dict) -> dict:
        """Start what :meth:`create` made (its result ``made``): the install run when there is
        one (a running instance of the install XML; the definition stays, and boots its disk at
        the next start), else the domain (created from its XML when transient). The copied kernel
        and initrd are removed once QEMU has read them. If the start fails, :meth:`discard` undoes
        the install and the error is raised with the hint :data:`NOTHING_KEPT`. Returns the
        start's result, as ``Domain.start``."""

    @abstractmethod
    def discard(self, made: dict) -> None:
        """Undo :meth:`create` (its result ``made``): undefine the domain and remove the files it
        created. Steps that fail are skipped: nothing is raised."""
