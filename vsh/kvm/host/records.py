"""What the host probe reports: plain records (machine types, CPU models, the KVM verdict,
the host), and the domain type a new domain gets.

The records are plain classes rather than dataclasses: the dataclasses module and class
generation cost more at import than everything else in the probe.
"""

from __future__ import annotations


class Factory:
    """A default made fresh for each record (like dataclasses.field(default_factory=...))."""

    def __init__(self, make):
        self.make = make


class Record:
    """A small dataclass look-alike: fields are the annotated class attributes, in order.

    Records take their fields positionally or by keyword, compare equal field by
    field, and turn into plain dicts with ``asdict()``.
    """

    _field_names: tuple[str, ...] = ()

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        names = list(cls._field_names)
        for n in cls.__dict__.get("__annotations__", {}):
            if n not in names and not n.startswith("_"):
                names.append(n)
        cls._field_names = tuple(names)

    def __init__(self, *args, **kw):
        names = self._field_names
        if len(args) > len(names):
            raise TypeError("%s takes at most %d arguments" % (type(self).__name__, len(names)))
        for n, v in zip(names, args):
            if n in kw:
                raise TypeError("%s got two values for '%s'" % (type(self).__name__, n))
            kw[n] = v
        unknown = set(kw) - set(names)
        if unknown:
            raise TypeError("%s has no field %s" % (type(self).__name__, ", ".join(sorted(unknown))))
        for n in names:
            if n in kw:
                v = kw[n]
            else:
                v = getattr(type(self), n, MISSING)
                if v is MISSING:
                    raise TypeError("%s needs '%s'" % (type(self).__name__, n))
                if isinstance(v, Factory):
                    v = v.make()
            setattr(self, n, v)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return cls._field_names

    def asdict(self) -> dict:
        def conv(v):
            if isinstance(v, Record):
                return v.asdict()
            if isinstance(v, (list, tuple)):
                return type(v)(conv(x) for x in v)
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            return v

        return {n: conv(getattr(self, n)) for n in self._field_names}

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._field_names)

    __hash__ = None

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % (n, getattr(self, n)) for n in self._field_names))


MISSING = object()


class MachineType(Record):
    """One ``-machine`` type, as QEMU's ``query-machines`` reports it."""

    name: str
    alias: str | None = None
    is_default: bool = False
    cpu_max: int = 1
    deprecated: bool = False


class CpuModel(Record):
    """One ``-cpu`` model; ``usable`` under TCG (what query-cpu-definitions says there)."""

    name: str
    usable: bool = True
    deprecated: bool = False


class KvmInfo(Record):
    """The KVM verdict.

    ``present``: ``/dev/kvm`` exists.  ``accessible``: this user can open it
    read-write.  ``usable``: a 64-bit test guest ran to its end under
    ``-accel kvm`` (``reason`` says why not, or what was proven).
    ``host_cpu_usable``: the same with ``-cpu host`` (what host-passthrough
    and host-model need).
    """

    present: bool = False
    accessible: bool = False
    usable: bool = False
    reason: str = ""
    api_version: int | None = None
    extensions: dict[str, int] = Factory(dict)
    vm_create: bool = False
    modules: list[str] = Factory(list)
    host_cpu_usable: bool = False
    host_cpu_reason: str = ""
    decided: bool = True
    seconds: float = 0.0


class HostInfo(Record):
    """Everything vsh needs to know about the host (see module docstring)."""

    qemu_path: str | None = None
    qemu_version: str = ""
    qemu_version_tuple: tuple[int, ...] = ()
    qemu_package: str = ""
    machines: list[MachineType] = Factory(list)
    accelerators: list[str] = Factory(list)
    cpu_models: list[CpuModel] = Factory(list)
    tcg_usable: bool = False
    kvm: KvmInfo = Factory(KvmInfo)
    arch: str = "x86_64"
    kernel_release: str = ""
    cpu_model_name: str = ""
    cpu_vendor: str = ""
    cpu_flags: list[str] = Factory(list)
    cpus: int = 1
    sockets: int = 1
    cores_per_socket: int = 1
    threads_per_core: int = 1
    mhz: int = 0
    numa_cells: list[dict] = Factory(list)
    memory_kib: int = 0
    iommu_groups: bool = False
    from_cache: bool = False
    probe_seconds: float = 0.0

    @property
    def tcg(self) -> bool:
        return "tcg" in self.accelerators and self.tcg_usable

    def machine(self, name: str) -> MachineType | None:
        """The machine type called ``name`` (or aliased so)."""
        for m in self.machines:
            if m.name == name or m.alias == name:
                return m
        return None

    def default_machine(self) -> MachineType | None:
        for m in self.machines:
            if m.is_default:
                return m
        return self.machines[0] if self.machines else None


def default_domain_type(host: HostInfo) -> str:
    """'kvm' where KVM really runs guests, else 'qemu' (TCG)."""
    return "kvm" if host.kvm.usable else "qemu"
