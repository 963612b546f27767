"""vsh install's --location media, --initrd-inject and the device options (--filesystem, --tpm...)."""

from __future__ import annotations

import gzip
import http.server
import io
import os
import shutil
import subprocess
import threading

import pytest
from lxml import etree

from vsh.core import installdevs, installmedia
from vsh.core.errors import InvalidArgument, NotFound

KERNEL = b"\x7fKERNEL" * 100
INITRD_FILES = {"init": b"#!/bin/sh\necho hi\n"}


def _cpio_tool_archive(tmp_path, files: dict) -> bytes:
    """A gzip-compressed newc archive made by GNU cpio (the format a distribution's initrd has)."""
    src = tmp_path / "cpio-src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    out = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], input="\n".join(files).encode(), cwd=src,
                         capture_output=True, check=True).stdout
    return gzip.compress(out)


def _members(blob: bytes) -> list[str]:
    """The names in every cpio archive of an initrd (as the kernel unpacks them), via GNU cpio."""
    raw = gzip.decompress(blob)
    names = []
    while raw:
        proc = subprocess.run(["cpio", "-it", "--quiet"], input=raw, capture_output=True, check=True)
        names += proc.stdout.decode().split()
        # the next archive starts after this one's TRAILER!!! entry, past the 4-byte padding
        end = raw.index(b"TRAILER!!!") + len(b"TRAILER!!!") + 1
        end += -end % 4
        raw = raw[end:].lstrip(b"\0")
    return names


pytestmark = pytest.mark.skipif(shutil.which("cpio") is None, reason="needs GNU cpio")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "install.amd").mkdir(parents=True)
    (root / "install.amd" / "vmlinuz").write_bytes(KERNEL)
    (root / "install.amd" / "initrd.gz").write_bytes(_cpio_tool_archive(tmp_path, INITRD_FILES))
    return root


def _iso(tmp_path, tree, rock_ridge=True) -> str:
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3 if not rock_ridge else None, rock_ridge="1.09" if rock_ridge else None)
    iso.add_directory("/INSTALL_AMD", rr_name="install.amd" if rock_ridge else None,
                      joliet_path=None if rock_ridge else "/install.amd")
    for name, iso_name in (("vmlinuz", "VMLINUZ.;1"), ("initrd.gz", "INITRD.GZ;1")):
        data = (tree / "install.amd" / name).read_bytes()
        iso.add_fp(io.BytesIO(data), len(data), f"/INSTALL_AMD/{iso_name}",
                   rr_name=name if rock_ridge else None,
                   joliet_path=None if rock_ridge else f"/install.amd/{name}")
    path = tmp_path / ("rr.iso" if rock_ridge else "joliet.iso")
    iso.write(str(path))
    iso.close()
    return str(path)


@pytest.mark.parametrize("rock_ridge", [True, False])
def test_kernel_and_initrd_from_an_iso(tmp_path, tree, rock_ridge):
    loc = installmedia.parse_location(_iso(tmp_path, tree, rock_ridge))
    assert loc.kind == "iso"
    out = tmp_path / "boot"
    out.mkdir()
    kernel, initrd = installmedia.fetch_boot_files(loc, str(out), "vm")
    assert open(kernel, "rb").read() == KERNEL
    assert _members(open(initrd, "rb").read()) == ["init"]
    assert oct(os.stat(kernel).st_mode & 0o777) == "0o600"


def test_kernel_and_initrd_from_a_tree_and_explicit_paths(tmp_path, tree):
    out = tmp_path / "boot"
    out.mkdir()
    kernel, _ = installmedia.fetch_boot_files(installmedia.parse_location(str(tree)), str(out), "a")
    assert open(kernel, "rb").read() == KERNEL
    (tree / "k").write_bytes(b"other")
    (tree / "i").write_bytes(b"rd")
    loc = installmedia.parse_location(f"{tree},kernel=k,initrd=/i")
    kernel, initrd = installmedia.fetch_boot_files(loc, str(out), "b")
    assert open(kernel, "rb").read() == b"other" and open(initrd, "rb").read() == b"rd"


def test_kernel_and_initrd_over_http(tmp_path, tree):
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(tree), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        loc = installmedia.parse_location(url)
        assert loc.kind == "url"
        out = tmp_path / "boot"
        out.mkdir()
        kernel, _ = installmedia.fetch_boot_files(loc, str(out), "h")
        assert open(kernel, "rb").read() == KERNEL
        with pytest.raises(NotFound, match="could not find a kernel and initrd"):
            installmedia.fetch_boot_files(installmedia.parse_location(url + "nothing-here/"), str(out), "z")
    finally:
        server.shutdown()
        server.server_close()


def test_location_errors(tmp_path, tree):
    with pytest.raises(NotFound, match="cannot access"):
        installmedia.parse_location(str(tmp_path / "missing.iso"))
    with pytest.raises(InvalidArgument, match="go together"):
        installmedia.parse_location(f"{tree},kernel=k")
    with pytest.raises(InvalidArgument, match="inside the install tree"):
        installmedia.parse_location(f"{tree},kernel=../k,initrd=i")
    (tmp_path / "bad.iso").write_bytes(b"not an iso" * 1000)
    with pytest.raises(InvalidArgument, match="not a readable ISO image"):
        installmedia.fetch_boot_files(installmedia.parse_location(str(tmp_path / "bad.iso")), str(tmp_path), "x")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotFound, match="could not find a kernel and initrd in install tree") as err:
        installmedia.fetch_boot_files(installmedia.parse_location(str(empty)), str(tmp_path), "y")
    assert "kernel=PATH,initrd=PATH" in err.value.hint


def test_initrd_inject_appends_an_archive_the_kernel_unpacks(tmp_path, tree):
    initrd = tmp_path / "initrd"
    shutil.copy(tree / "install.amd" / "initrd.gz", initrd)
    seed = tmp_path / "preseed.cfg"
    seed.write_text("d-i debian-installer/locale string en_US\n")
    ks = tmp_path / "ks.cfg"
    ks.write_text("text\n")
    installmedia.inject_files(str(initrd), [str(seed), str(ks)])
    blob = initrd.read_bytes()
    assert _members(blob) == ["init", "preseed.cfg", "ks.cfg"]
    # the injected archive is a second gzip member: the original bytes are untouched
    assert blob.startswith((tree / "install.amd" / "initrd.gz").read_bytes())
    with pytest.raises(NotFound, match="cannot read"):
        installmedia.inject_files(str(initrd), [str(tmp_path / "missing")])
    with pytest.raises(InvalidArgument, match="not a regular file"):
        installmedia.inject_files(str(initrd), [str(tmp_path)])


@pytest.mark.parametrize("parse, text, xml", [
    (installdevs.filesystem_xml, "/srv/share,tag1",
     "<filesystem type=\"mount\" accessmode=\"passthrough\"><source dir=\"/srv/share\"/><target dir=\"tag1\"/>"
     "</filesystem>"),
    (installdevs.filesystem_xml, "source=/srv,target=t,accessmode=mapped,readonly=on",
     "<filesystem type=\"mount\" accessmode=\"mapped\"><source dir=\"/srv\"/><target dir=\"t\"/><readonly/>"
     "</filesystem>"),
    (installdevs.channel_xml, "unix,target.type=virtio,name=org.qemu.guest_agent.0",
     "<channel type=\"unix\"><source mode=\"bind\"/><target type=\"virtio\" name=\"org.qemu.guest_agent.0\"/>"
     "</channel>"),
    (installdevs.channel_xml, "pty,target_type=virtio,name=x.y",
     "<channel type=\"pty\"><target type=\"virtio\" name=\"x.y\"/></channel>"),
    (installdevs.video_xml, "virtio", "<video><model type=\"virtio\"/></video>"),
    (installdevs.video_xml, "model.type=qxl,vram=65536", "<video><model type=\"qxl\" vram=\"65536\"/></video>"),
    (installdevs.tpm_xml, "emulator",
     "<tpm model=\"tpm-crb\"><backend type=\"emulator\" version=\"2.0\"/></tpm>"),
    (installdevs.tpm_xml, "/dev/tpm0",
     "<tpm model=\"tpm-crb\"><backend type=\"passthrough\"><device path=\"/dev/tpm0\"/></backend></tpm>"),
    (installdevs.tpm_xml, "model=tpm-tis,backend.type=emulator,backend.version=1.2",
     "<tpm model=\"tpm-tis\"><backend type=\"emulator\" version=\"1.2\"/></tpm>"),
    (installdevs.sound_xml, "default", "<sound model=\"ich9\"/>"),
    (installdevs.watchdog_xml, "i6300esb,action=poweroff", "<watchdog model=\"i6300esb\" action=\"poweroff\"/>"),
    (installdevs.controller_xml, "usb3", "<controller type=\"usb\" index=\"0\" model=\"qemu-xhci\"/>"),
    (installdevs.controller_xml, "type=scsi,model=virtio-scsi,index=1",
     "<controller type=\"scsi\" index=\"1\" model=\"virtio-scsi\"/>"),
    (installdevs.input_xml, "tablet", "<input type=\"tablet\" bus=\"usb\"/>"),
    (installdevs.input_xml, "keyboard,bus=virtio", "<input type=\"keyboard\" bus=\"virtio\"/>"),
    (installdevs.memballoon_xml, "none", "<memballoon model=\"none\"/>"),
])
def test_device_options(parse, text, xml):
    assert etree.tostring(parse(text)).decode() == xml


@pytest.mark.parametrize("parse, text", [(installdevs.video_xml, "none"), (installdevs.tpm_xml, "none"),
                                         (installdevs.sound_xml, "none"), (installdevs.controller_xml, "none")])
def test_device_options_none(parse, text):
    assert parse(text) is None


@pytest.mark.parametrize("parse, text, message", [
    (installdevs.filesystem_xml, "/only-one", "SOURCE,TARGET"),
    (installdevs.filesystem_xml, "source=/a", "both the host directory"),
    (installdevs.channel_xml, "unix", "needs its name"),
    (installdevs.channel_xml, "spicevmc,name=x", "type 'spicevmc' is not one of unix, pty"),
    (installdevs.video_xml, "matrox", "model 'matrox' is not one of"),
    (installdevs.tpm_xml, "emulator,backend.device.path=/dev/tpm0", "passthrough backend"),
    (installdevs.watchdog_xml, "i6300esb,action=explode", "action 'explode'"),
    (installdevs.input_xml, "joystick", "type 'joystick'"),
    (installdevs.controller_xml, "type=usb,index=x", "index= must be a number"),
    (installdevs.sound_xml, "", "a value is required"),
])
def test_device_option_errors(parse, text, message):
    with pytest.raises(InvalidArgument, match=message):
        parse(text)


def test_print_xml_with_location_has_the_install_run_first(vsh, tmp_path, tree):
    res = vsh("install", "--name", "loc", "--memory", "256", "--disk", "none", "--location", str(tree),
              "--extra-args", "auto=true priority=critical", "--filesystem", "/srv,share", "--tpm", "none",
              "--channel", "unix,name=org.qemu.guest_agent.0", "--watchdog", "i6300esb", "--print-xml")
    assert res.status == 0, res.err
    first, second = res.out.split("</domain>\n")[:2]
    inst, final = etree.fromstring(first + "</domain>"), etree.fromstring(second + "</domain>")
    assert inst.findtext("os/kernel").endswith("-vmlinuz") and inst.findtext("os/initrd").endswith("-initrd")
    assert inst.findtext("os/cmdline") == "auto=true priority=critical console=ttyS0"
    assert inst.findtext("on_reboot") == "destroy" and final.findtext("on_reboot") == "restart"
    assert final.find("os/kernel") is None and final.find("os/boot").get("dev") == "hd"
    for dom in (inst, final):
        assert dom.find("devices/filesystem/target").get("dir") == "share"
        assert dom.find("devices/channel/target").get("name") == "org.qemu.guest_agent.0"
        assert dom.find("devices/watchdog").get("model") == "i6300esb"
        assert dom.find("devices/tpm") is None


@pytest.mark.parametrize("words, channels", [
    (["--osinfo", "debian12"], ["org.qemu.guest_agent.0"]),        # an OS with qemu-ga: virt-install's default
    (["--osinfo", "debian12", "--channel", "none"], []),           # none: not even the default
    (["--osinfo", "alpine3.19", "--channel", "pty,name=org.example.0"], ["org.example.0"]),  # given: only that
    ([], []),                                                      # generic OS: no agent assumed
    (["--osinfo", "debian12", "--machine", "microvm"], []),        # no PCI for a virtio-serial controller
])
def test_install_adds_the_guest_agent_channel_as_virt_install(vsh, words, channels):
    res = vsh("install", "--name", "ga", "--memory", "256", "--disk", "none", "--boot", "kernel=/boot/k",
              *words, "--print-xml")
    assert res.status == 0, res.err
    dom = etree.fromstring(res.out)
    assert [t.get("name") for t in dom.findall("devices/channel/target")] == channels
    for ch in dom.findall("devices/channel[@type='unix']"):
        assert ch.find("source").get("path") is None      # the path is picked at start, in the run directory


def test_location_iso_stays_attached_for_the_install_run_only(vsh, tmp_path, tree):
    iso = _iso(tmp_path, tree)
    res = vsh("install", "--name", "l2", "--memory", "256", "--disk", "none", "--location", iso,
              "--graphics", "vnc", "--print-xml")
    assert res.status == 0, res.err
    first, second = res.out.split("</domain>\n")[:2]
    inst, final = etree.fromstring(first + "</domain>"), etree.fromstring(second + "</domain>")
    assert inst.find("devices/disk[@device='cdrom']/source").get("file") == iso
    assert final.find("devices/disk[@device='cdrom']") is not None
    assert final.find("devices/disk[@device='cdrom']/source") is None      # ejected
    assert "console=" not in (inst.findtext("os/cmdline") or "")            # graphics: no serial console added


@pytest.mark.parametrize("words, message", [
    (["--extra-args", "x", "--boot", "hd"], "--extra-args only works with --location"),
    (["--initrd-inject", "/etc/hostname", "--boot", "hd"], "--initrd-inject only works with --location"),
    (["--boot", "hd", "--noreboot"], "--noreboot goes with --wait"),
    (["--boot", "hd", "--transient", "--autostart"], "--transient"),
    (["--boot", "hd", "--osinfo", "debian12", "--os-variant", "debian12"], "--osinfo"),
    (["--location", "/nonexistent.iso"], "cannot access '/nonexistent.iso'"),
])
def test_install_option_errors(vsh, words, message, store_tree):
    before = store_tree()
    res = vsh("install", "--name", "e", "--disk", "none", *words)
    assert res.status != 0 and res.err.startswith("error: ") and message in res.err, res
    assert store_tree() == before


def _print_xml(vsh, *words):
    res = vsh("install", "--name", "d", "--memory", "256", "--disk", "none", "--boot", "hd", "--print-xml", *words)
    assert res.status == 0, res.err
    return etree.fromstring(res.out.encode())


def test_domain_options(vsh):
    dom = _print_xml(vsh, "--events", "on_poweroff=preserve,on_crash=restart", "--metadata", "title=My VM",
                     "--description", "a, b and c", "--features", "pmu=off,smm=on,kvm_hidden=on",
                     "--clock", "offset=localtime", "--memorybacking", "source.type=memfd,access.mode=shared",
                     "--iothreads", "2", "--panic", "isa", "--serial", "file,path=/tmp/s.log", "--serial", "null")
    assert dom.findtext("on_poweroff") == "preserve" and dom.findtext("on_crash") == "restart"
    assert dom.findtext("on_reboot") == "restart"
    assert dom.findtext("title") == "My VM" and dom.findtext("description") == "a, b and c"
    assert dom.find("features/smm") is not None and dom.find("features/pmu") is None
    assert dom.find("features/kvm/hidden").get("state") == "on"
    assert dom.find("clock").get("offset") == "localtime"
    assert dom.find("memoryBacking/source").get("type") == "memfd"
    assert dom.find("memoryBacking/access").get("mode") == "shared"
    assert dom.findtext("iothreads") == "2"
    assert dom.find("devices/panic").get("model") == "isa"
    serials = dom.findall("devices/serial")
    assert [(s.get("type"), s.find("target").get("port")) for s in serials] == [("pty", "0"), ("file", "1"),
                                                                                 ("null", "2")]
    assert serials[1].find("source").get("path") == "/tmp/s.log"
    # the order libvirt's schema wants: the document validates (define would refuse it otherwise)
    assert [c.tag for c in dom][:3] == ["name", "uuid", "title"]


def test_xml_edits(vsh):
    dom = _print_xml(vsh, "--disk", "size=1", "--xml", "./devices/disk/driver/@cache=none",
                     "--xml", "./on_crash=preserve", "--xml", "xpath.create=./devices/panic",
                     "--xml", "xpath.delete=./devices/rng", "--xml", "./seclabel/@type=none")
    assert dom.find("devices/disk/driver").get("cache") == "none"
    assert dom.findtext("on_crash") == "preserve"
    assert dom.find("devices/panic") is not None and dom.find("devices/rng") is None
    assert dom.find("seclabel").get("type") == "none"


@pytest.mark.parametrize("words, message", [
    (["--events", "on_poweroff=explode"], "action 'explode'"),
    (["--events", "on_boot=destroy"], "--events"),
    (["--features", "warp=on"], "--features"),
    (["--clock", "offset=timezone"], "needs timezone=ZONE"),
    (["--memorybacking", "source.type=swap"], "source type 'swap'"),
    (["--iothreads", "two"], "expected a number"),
    (["--panic", "boom"], "model 'boom'"),
    (["--serial", "file"], "path= is needed"),
    (["--xml", "devices/disk/@cache=none"], "must start with ./"),
    (["--xml", "./devices/disk[@bus='x']/@y=1"], "plain steps"),
    (["--xml", "nothing"], "expected XPATH=VALUE"),
    (["--metadata", "name=other"], "must match --name"),
])
def test_domain_option_errors(vsh, words, message):
    res = vsh("install", "--name", "d", "--memory", "256", "--disk", "none", "--boot", "hd", "--print-xml", *words)
    assert res.status == 1 and res.err.startswith("error: ") and message in res.err, res
