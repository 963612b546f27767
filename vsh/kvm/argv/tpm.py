"""TPMs: ``<tpm model='tpm-crb|tpm-tis'>`` with an emulated TPM (``<backend type='emulator'>``,
swtpm, which the supervisor starts next to QEMU: see ``vsh.kvm.swtpm``) or the host's own
(``<backend type='passthrough'>``), as libvirt's qemu driver runs them."""

from __future__ import annotations

from vsh.core.errors import InvalidArgument, Unsupported
from vsh.kvm.argv.builder import Builder
from vsh.kvm.argv.options import check_socket_path, esc, given, need_file, opts

MODELS = ("tpm-crb", "tpm-tis")
VERSIONS = ("1.2", "2.0")


def socket_path(paths, n: int) -> str:
    """The unix socket on which the swtpm of TPM ``n`` serves its control channel."""
    return paths.socket_for("tpm%d-swtpm" % n)


def version(dev) -> str:
    """The TPM version an emulated TPM implements (2.0 unless the XML says 1.2)."""
    return dev.backend_version or "2.0"


def tpm(b: Builder, dev, n: int) -> None:
    """<tpm> number ``n``: a chardev to its swtpm (or the host's TPM), -tpmdev and the device."""
    model = given(dev.model, "tpm-tis")
    what = "<tpm model='%s'>" % model
    if n > 0:
        raise Unsupported("%s: one TPM per domain on x86_64" % what)
    if model not in MODELS:
        raise Unsupported("%s is not supported on x86_64 (%s)" % (what, ", ".join(MODELS)))
    btype = dev.backend_type
    if btype == "emulator":
        ver = version(dev)
        if ver not in VERSIONS:
            raise InvalidArgument("%s: unknown TPM version '%s' (%s)" % (what, ver, ", ".join(VERSIONS)))
        if model == "tpm-crb" and ver != "2.0":
            raise InvalidArgument("%s: the CRB interface is TPM 2.0 only" % what)
        if dev.backend_encrypted:
            raise Unsupported("%s: an encrypted TPM state (<encryption secret>) needs libvirt's secrets, "
                              "which vsh does not keep" % what)
        sock = socket_path(b.paths, n)
        check_socket_path(sock, what)
        b.add("-chardev", "socket,id=chrtpm%d,path=%s" % (n, esc(sock)))
        b.add("-tpmdev", "emulator,id=tpm-tpm%d,chardev=chrtpm%d" % (n, n))
    elif btype == "passthrough":
        path = need_file(dev.backend_device_path if dev.backend_device else "/dev/tpm0", what + " <device path>")
        name = path.rpartition("/")[2]
        b.add("-tpmdev", opts("passthrough", ("id", "tpm-tpm%d" % n), ("path", path),
                              ("cancel-path", "/sys/class/tpm/%s/device/cancel" % name)))
    else:
        raise InvalidArgument("%s: <backend type='%s'> is not a TPM backend (emulator, passthrough)" % (what, btype))
    b.add("-device", opts(model, ("tpmdev", "tpm-tpm%d" % n), ("id", "tpm%d" % n)))


def emulators(root, paths) -> list[dict]:
    """What the supervisor needs to run the swtpm of each emulated TPM: its socket and version
    (the state directory is the caller's: it outlives the run)."""
    from vsh.core.domain import Domain

    out = []
    for n, dev in enumerate(Domain(root).devices("tpm")):
        if dev.backend_type == "emulator":
            out.append({"socket": socket_path(paths, n), "version": version(dev)})
    return out
