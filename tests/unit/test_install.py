"""vsh install (vsh/commands/install.py over vsh/core/installopts.py, vsh/api/local/installplan.py
and vsh/api/local/install.py): option parsing, the XML it writes (golden files, libvirt's schema),
os-variant defaults, the files it creates, and its errors.

Nothing here boots a guest: the start at the end of an install is replaced by a fake
where a test gets that far (tests/integration/test_install.py boots for real).
The golden files are tests/data/install/NAME.xml; regenerate them with VSH_REGEN_GOLDEN=1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from vsh.api.local import installplan
from vsh.core import installopts as inst
from vsh.core.errors import InvalidArgument, NotFound, Unsupported, VshError

_spec = importlib.util.spec_from_file_location(
    "argv_materials", Path(__file__).resolve().parents[1] / "argv_materials.py")
am = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(am)

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "install"
SCHEMA = "/usr/share/libvirt/schemas/domain.rng"
REGEN = os.environ.get("VSH_REGEN_GOLDEN") == "1"
UUID = "8c1e5d0e-1f6a-4b53-9f0e-2a3b4c5d6e7f"
MAC = "52:54:00:12:34:56"
HAVE_QEMU_IMG = am.have_qemu_img()


@pytest.fixture(autouse=True)
def fake_host(monkeypatch):
    """Every install here sees a host like this one (TCG only), without probing."""
    host = am.fake_host()
    monkeypatch.setattr(installplan, "probe_host", lambda: host)
    return host


@pytest.fixture
def files(tmp_path):
    """A kernel, an initrd, an ISO and a raw and a qcow2 image to name in options."""
    d = tmp_path / "files"
    d.mkdir()
    am.fake_bzimage(d / "vmlinuz")
    (d / "initrd.img").write_bytes(b"\0" * 1024)
    (d / "media.iso").write_bytes(b"\0" * 4096)
    (d / "disk.raw").write_bytes(b"\0" * 65536)
    if HAVE_QEMU_IMG:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(d / "base.qcow2"), "16M"], check=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(d / "cloud.img"), "16M"], check=True)
    return d


@pytest.fixture
def fake_start(monkeypatch):
    """Replace the local driver's start (which would launch QEMU): record the names started,
    or fail like a start can."""
    from vsh.api.local.lifecycle import LocalDomainLifecycle

    calls = {"started": [], "fail": None}

    def start(dom, paused=False, force_boot=False, bypass_cache=False):
        if calls["fail"]:
            raise VshError(calls["fail"]).with_context(f"Failed to start domain '{dom.name}'")
        calls["started"].append(dom.name)
        return {"name": dom.name, "state": "running"}

    monkeypatch.setattr(LocalDomainLifecycle, "start", start)
    return calls


def plan_for(vsh_env, *words, host=None):
    """make_plan for command-line words (as the command would see them)."""
    from vsh.core.store import Store
    from vsh.registry import bind, parse_args, registry

    cmd = registry().get("install")
    kw = bind(cmd, parse_args(cmd, list(words)))
    kw.pop("json", None)
    opts = dict(kw, import_=kw.pop("import", False), network=kw.get("network") or None)
    return installplan.make_plan(installplan.StoreSite(Store.open(vsh_env.uri)), opts, host or am.fake_host())


def schema_ok(xml: str) -> None:
    if not os.path.exists(SCHEMA):
        pytest.skip("libvirt's domain.rng is not installed (libvirt0)")
    rng = etree.RelaxNG(file=SCHEMA)
    doc = etree.fromstring(xml.encode())
    assert rng.validate(doc), (rng.error_log, xml)


# ---- the comma syntax --------------------------------------------------------------------------


def test_split_options_keys_quotes_and_bare_words():
    assert inst.split_options("a,b=c,Kernel-Args='x, y',d=\"p,q\"", "--x") == [
        (None, "a"), ("b", "c"), ("kernel_args", "x, y"), ("d", "p,q")]
    assert inst.split_options("console=ttyS0 quiet", "--x") == [("console", "ttyS0 quiet")]
    assert inst.split_options("", "--x") == []
    with pytest.raises(InvalidArgument, match="unbalanced"):
        inst.split_options("a='b", "--disk")


def test_parse_memory_vcpus_cpu():
    g = inst.OS_VARIANTS["generic"]
    assert inst.parse_memory(None, g) == (512 * 1024, 512 * 1024)
    assert inst.parse_memory("256", g) == (256 * 1024, 256 * 1024)
    assert inst.parse_memory("memory=1024,currentMemory=512", g) == (1024 * 1024, 512 * 1024)
    for bad in ("0", "-1", "1G", "memory=2,currentMemory=4", "foo=1"):
        with pytest.raises(InvalidArgument):
            inst.parse_memory(bad, g)
    assert inst.parse_vcpus("2", g)["max"] == 2
    v = inst.parse_vcpus("2,maxvcpus=4", g)
    assert (v["current"], v["max"]) == (2, 4)
    v = inst.parse_vcpus("sockets=1,cores=2,threads=2", g)
    assert (v["current"], v["max"], v["cores"], v["threads"]) == (4, 4, 2, 2)
    for bad in ("0", "x", "4,maxvcpus=2", "4,sockets=1,cores=3", "2,bogus=1"):
        with pytest.raises(InvalidArgument):
            inst.parse_vcpus(bad, g)
    assert inst.parse_cpu("max") == {"mode": "maximum", "model": None, "features": []}
    assert inst.parse_cpu("host-passthrough")["mode"] == "host-passthrough"
    assert inst.parse_cpu("Skylake-Client,+vmx,-hle") == {
        "mode": "custom", "model": "Skylake-Client", "features": [("require", "vmx"), ("disable", "hle")]}
    for bad in ("mode=fast", "a b", "model=x;y"):
        with pytest.raises(InvalidArgument):
            inst.parse_cpu(bad)


def test_parse_disk():
    d = inst.parse_disk("size=0.1")
    assert d.size == 107374592 and d.size % 512 == 0 and d.path is None and d.device == "disk"
    d = inst.parse_disk("/x/y.qcow2,bus=scsi,readonly=on")
    assert (d.path, d.bus, d.readonly) == ("/x/y.qcow2", "scsi", True)
    d = inst.parse_disk("path=rel.img,format=raw")
    assert d.path == os.path.abspath("rel.img") and d.format == "raw" and d.explicit_format
    assert inst.parse_disk("device=cdrom,path=/a.iso").readonly is True
    assert inst.parse_disk("none") is None
    for bad, msg in (("size=0", "size"), ("size=lots", "size"), ("format=vmdk", "format"),
                     ("bus=usb", "bus"), ("device=floppy", "device"), ("size=1,size=2", "twice"),
                     ("sparse=no", "unknown option"), ("device=cdrom,size=1", "cdrom"),
                     ("target=xyz", "target"), ("cache=fast", "cache"), ("size=1,backing_format=raw",
                                                                        "backing_store")):
        with pytest.raises(VshError, match=msg):
            inst.parse_disk(bad)


def test_parse_network():
    n = inst.parse_network("user")
    assert (n.type, n.model, n.mac, n.forwards) == ("user", None, None, [])
    n = inst.parse_network(f"user,model=e1000e,mac={MAC.upper()},portforward=2222:22,portforward=0.0.0.0:8053:53/udp")
    assert n.model == "e1000e" and n.mac == MAC
    assert [f.hostfwd() for f in n.forwards] == ["tcp:127.0.0.1:2222-:22", "udp:0.0.0.0:8053-:53"]
    assert inst.parse_network("none") is None
    assert inst.parse_network("network=default")[:2] == ("network", "default")
    assert inst.parse_network("default")[:2] == ("network", "default")
    for bad in ("wifi", "model=ne2k", "mac=01:00:00:00:00:01", "mac=zz", "network=default,portforward=1:2",
                "user,portforward=99999:22", "user,portforward=22", "user,speed=10"):
        with pytest.raises(VshError):
            inst.parse_network(bad)
    with pytest.raises(Unsupported, match="passt"):
        inst.parse_network("passt")


def test_parse_boot_kernel_args_keep_their_commas():
    b = inst.parse_boot("kernel=/k,initrd=/i,kernel_args=console=ttyS0,115200 quiet")
    assert (b.kernel, b.initrd, b.cmdline) == ("/k", "/i", "console=ttyS0,115200 quiet")
    b = inst.parse_boot("kernel=/k,kernel_args=\"a=1,b=2\",uefi")
    assert b.cmdline == "a=1,b=2" and b.uefi
    b = inst.parse_boot("cdrom,hd,menu=on")
    assert b.devices == ["cdrom", "hd"] and b.menu is True
    for bad in ("initrd=/i", "kernel_args=x", "kernel=", "floppy", "firmware=coreboot"):
        with pytest.raises(VshError):
            inst.parse_boot(bad)


def test_os_variant_table_and_defaults(vsh_env, files, vsh):
    assert set(inst.OS_VARIANTS) == {"debian12", "debian11", "ubuntu22.04", "ubuntu24.04", "fedora40",
                                     "alpine3.19", "generic"}
    res = vsh("install", "--os-variant", "list")
    assert res.status == 0 and "debian12" in res.out and "alpine3.19" in res.out
    assert [r["name"] for r in json.loads(vsh("install", "--os-variant", "list", "--json").out)][0] == "debian12"
    for name, variant in inst.OS_VARIANTS.items():
        plan = plan_for(vsh_env, "--name", "v", "--os-variant", name, "--disk", "size=1",
                        "--boot", f"kernel={files / 'vmlinuz'}")
        assert plan.dom.memory == variant.memory * 1024
        assert plan.dom.vcpus == variant.vcpus
        assert plan.dom.os_machine == variant.machine
        assert plan.dom.disks[0].target_bus == variant.disk_bus == "virtio"
        assert plan.dom.interfaces[0].model == variant.nic_model
        plan = plan_for(vsh_env, "--name", "v", "--os-variant", name, "--disk", "pool=default",
                        "--cdrom", str(files / "media.iso"))
        assert plan.disks[0]["size"] == variant.disk * inst.GIB
    # the options beat the table
    plan = plan_for(vsh_env, "--name", "v", "--os-variant", "alpine3.19", "--memory", "300", "--vcpus", "2",
                    "--disk", "size=1,bus=sata", "--boot", f"kernel={files / 'vmlinuz'}", "--machine", "pc")
    assert (plan.dom.memory, plan.dom.vcpus, plan.dom.os_machine) == (300 * 1024, 2, "pc")
    with pytest.raises(InvalidArgument, match="unknown OS 'beos'"):
        plan_for(vsh_env, "--name", "v", "--os-variant", "beos", "--disk", "size=1", "--import")


# ---- the XML: golden files and libvirt's schema ------------------------------------------------

GOLDEN_CASES = {
    "kernel-boot": ["--memory", "256", "--boot", "kernel=@/vmlinuz,initrd=@/initrd.img,kernel_args=console=ttyS0 quiet",
                    "--disk", "size=0.1", "--graphics", "none"],
    "cdrom-install": ["--os-variant", "debian12", "--vcpus", "2,maxvcpus=4", "--cpu", "max",
                      "--disk", "size=2,format=raw", "--disk", "size=1,bus=scsi,cache=none",
                      "--cdrom", "@/media.iso", "--rng", "builtin"],
    "import-forwards": ["--memory", "512", "--import", "--disk", "@/disk.raw,format=raw",
                        "--network", f"user,mac={MAC},portforward=2222:22,portforward=0.0.0.0:8080:80/tcp",
                        "--network", "user,model=e1000,mac=52:54:00:65:43:21,portforward=5353:53/udp",
                        "--console", "pty,target_type=virtio", "--rng", "none"],
    "pc-ide-vnc": ["--machine", "pc", "--memory", "512", "--cpu", "Skylake-Client,+vmx",
                   "--vcpus", "sockets=1,cores=2,threads=1", "--disk", "size=1,bus=ide",
                   "--disk", "device=cdrom,path=@/media.iso", "--boot", "cdrom,hd,menu=on",
                   "--graphics", "vnc"],
    "microvm": ["--machine", "microvm", "--memory", "256", "--boot",
                "kernel=@/vmlinuz,initrd=@/initrd.img,kernel_args=console=ttyS0", "--disk", "size=0.5",
                "--network", "user,portforward=2223:22"],
}


def _words(case: str, files: Path) -> list[str]:
    return [w.replace("@", str(files)) for w in GOLDEN_CASES[case]]


def _normal(text: str, vsh_env, files: Path) -> str:
    return text.replace(str(files), "/FILES").replace(str(vsh_env.store), "/STORE")


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_print_xml_golden_schema_and_argv(case, vsh, vsh_env, files, store_tree):
    before = store_tree()
    res = vsh("install", "--name", case, "--uuid", UUID, *_words(case, files), "--print-xml")
    assert res.status == 0, res
    assert store_tree() == before  # --print-xml creates nothing
    xml = res.out.rstrip("\n") + "\n"
    if case != "import-forwards":  # its MACs are given; elsewhere they are random
        import re

        xml = re.sub(r"<mac address='[0-9a-f:]+'/>", f"<mac address='{MAC}'/>", xml)
    got = _normal(xml, vsh_env, files)
    golden = GOLDEN / f"{case}.xml"
    if REGEN or not golden.exists():
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(got)
        if not REGEN:
            pytest.fail(f"golden file {golden.name} was missing and has been written; check it in")
    assert got == golden.read_text()
    schema_ok(xml)
    # and the argv builder takes it (the same check --dry-run makes)
    res = vsh("install", "--name", case, "--uuid", UUID, *_words(case, files), "--dry-run")
    assert res.status == 0, res
    assert res.out.startswith("Dry run completed successfully")
    assert store_tree() == before


@pytest.mark.skipif(not all(os.path.exists(p) for p in installplan.OVMF_PAIRS[0]), reason="OVMF is not installed")
def test_uefi_xml(vsh, vsh_env, files):
    res = vsh("install", "--name", "u", "--memory", "256", "--boot", f"uefi,kernel={files / 'vmlinuz'}",
              "--disk", "none", "--print-xml")
    assert res.status == 0, res
    assert "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>" in res.out
    assert f"<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>{vsh_env.store}/data/nvram/u_VARS.fd</nvram>" \
        in res.out
    schema_ok(res.out)
    assert vsh("install", "--name", "u", "--memory", "256", "--boot", f"uefi,kernel={files / 'vmlinuz'}",
               "--disk", "none", "--dry-run").status == 0


def test_uefi_without_ovmf_is_refused(vsh, monkeypatch, files, store_tree):
    monkeypatch.setattr(installplan, "OVMF_PAIRS", (("/nonexistent/CODE.fd", "/nonexistent/VARS.fd"),))
    before = store_tree()
    res = vsh("install", "--name", "u", "--boot", "uefi,hd", "--disk", "size=1")
    assert res.status == 1
    assert "error: --boot uefi: no UEFI firmware (OVMF) is installed on this host" in res.err
    assert "ovmf" in res.err
    assert store_tree() == before


def test_cloud_init_xml_and_schema(vsh, vsh_env, files, tmp_path):
    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample me@host\n")
    res = vsh("install", "--name", "c", "--import", "--disk", str(files / "disk.raw"),
              "--cloud-init", f"root-ssh-key={key}", "--print-xml")
    assert res.status == 0, res
    root = etree.fromstring(res.out.encode())
    cd = root.find("devices/disk[@device='cdrom']")
    assert cd.find("source").get("file") == f"{vsh_env.store}/data/images/c-cidata.iso"
    assert cd.find("readonly") is not None and cd.find("target").get("bus") == "sata"
    assert [b.get("dev") for b in root.findall("os/boot")] == ["hd"]
    schema_ok(res.out)


# ---- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("words, message", [
    ([], "--name is required"),
    (["--name", "a/b", "--import", "--disk", "x"], "cannot contain '/'"),
    (["--name", "x", "--disk", "size=1"], "no install method"),
    (["--name", "x", "--import"], "--import boots an existing disk"),
    (["--name", "x", "--cdrom", "/nonexistent.iso", "--disk", "size=1"], "--cdrom: cannot access"),
    (["--name", "x", "--import", "--disk", "/nonexistent.qcow2"], "--import needs an existing image"),
    (["--name", "x", "--boot", "hd"], "no storage"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1,pool=elsewhere"], "storage pool 'elsewhere' not found"),
    (["--name", "x", "--boot", "hd", "--disk", "path=/nonexistent-dir/a.qcow2,size=1"], "does not exist"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--virt-type", "kvm"], "needs a usable KVM"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--cpu", "host-passthrough"], "needs KVM"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--cpu", "Pentium9"], "not known to this QEMU"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1,bus=ide"], "no IDE controller"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--machine", "zx81"], "machine type 'zx81'"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--network", "network=nosuch"],
     "no network with matching name 'nosuch'"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--graphics", "spice"], "--graphics spice"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--rng", "/dev/zero"], "--rng"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--console", "tcp"], "--console"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--virt-type", "xen"], "invalid value 'xen'"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--uuid", "nope"], "--uuid"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--cloud-init", "user-data=/nonexistent"],
     "Failed to open file '/nonexistent'"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--cloud-init", "colour=blue"], "unknown option"),
    (["--name", "x", "--machine", "microvm", "--boot", "hd", "--disk", "size=1,bus=sata"], "microvm"),
    (["--name", "x", "--import", "--cdrom", "/etc/hostname", "--disk", "/etc/hostname"], "give one"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--print-xml", "--dry-run"], "mutually exclusive"),
    (["--name", "x", "--boot", "hd", "--disk", "size=1", "--network", "user,portforward=1:2,portforward=1:3"],
     "two port forwards use host port tcp/1"),
])
def test_bad_options_are_clear_errors_and_create_nothing(vsh, words, message, store_tree):
    before = store_tree()
    res = vsh("install", *words)
    assert res.status != 0, res
    assert res.err.startswith("error: "), res.err
    assert message in res.err, res.err
    assert store_tree() == before


def test_unknown_option_and_alias(vsh):
    res = vsh("install", "--name", "x", "--hostdev", "pci_0000_00_1f_2")
    assert res.status == 1 and "doesn't support option --hostdev" in res.err
    res = vsh("virt-install", "--os-variant", "list")
    assert res.status == 0 and "generic" in res.out
    assert "install" in vsh("help", "domain").out


# ---- carrying it out (start faked) --------------------------------------------------------------


@pytest.mark.skipif(not HAVE_QEMU_IMG, reason="needs qemu-img")
def test_install_creates_disks_defines_and_starts(vsh, vsh_env, files, fake_start):
    res = vsh("install", "--name", "d1", "--memory", "128", "--boot", "hd", "--disk", "size=0.01",
              "--disk", "size=0.02,format=raw", "--disk", f"path={vsh_env.tmp}/mine.qcow2,size=0.01",
              "--disk", f"{files / 'cloud.img'}", "--noautoconsole", "--autostart")
    assert res.status == 0, res
    images = vsh_env.store / "data" / "images"
    assert "Disk '%s' created (qcow2, 10.24 MiB)" % (images / "d1.qcow2") in res.out
    assert "Domain 'd1' defined\nDomain 'd1' started\n" in res.out
    assert fake_start["started"] == ["d1"]
    info = lambda p: json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(p)],  # noqa: E731
                                               capture_output=True, text=True, check=True).stdout)
    assert info(images / "d1.qcow2")["format"] == "qcow2"
    assert info(images / "d1.img")["format"] == "raw"
    assert info(vsh_env.tmp / "mine.qcow2")["virtual-size"] == 10737664
    assert oct((images / "d1.qcow2").stat().st_mode & 0o777) == "0o600"
    xml = vsh("dumpxml", "d1").out
    # an existing image given without format= is read as what its header says (cloud.img is qcow2)
    assert f"<driver name='qemu' type='qcow2'/>\n      <source file='{files / 'cloud.img'}'/>" in xml
    assert vsh("dominfo", "d1").out.count("Autostart:      enable") == 1
    # a second install of the same name is refused; the next free image names are used otherwise
    res = vsh("install", "--name", "d1", "--boot", "hd", "--disk", "size=0.01")
    assert res.status == 1 and "domain 'd1' already exists" in res.err
    res = vsh("install", "--name", "d2", "--boot", "hd", "--disk", f"path={images / 'd1.qcow2'},size=1")
    assert res.status == 1 and "already exists; drop size=" in res.err


@pytest.mark.skipif(not HAVE_QEMU_IMG, reason="needs qemu-img")
def test_failed_start_leaves_nothing(vsh, vsh_env, files, fake_start, store_tree, tmp_path):
    key = tmp_path / "k.pub"
    key.write_text("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ me@h\n")
    vsh("install", "--os-variant", "list")
    fake_start["fail"] = "internal error: QEMU exited at once"
    res = vsh("install", "--name", "f1", "--boot", "hd", "--disk", "size=0.01", "--cloud-init",
              f"root-ssh-key={key}", "--noautoconsole")
    assert res.status == 1
    assert res.err.splitlines()[:3] == ["error: Failed to install domain 'f1'",
                                       "error: Failed to start domain 'f1'",
                                       "error: internal error: QEMU exited at once"]
    assert "nothing was kept" in res.err
    assert vsh("list", "--all", "--name").out.strip() == ""
    images = vsh_env.store / "data" / "images"
    assert not (images / "f1.qcow2").exists() and not (images / "f1-cidata.iso").exists()


@pytest.mark.skipif(not HAVE_QEMU_IMG, reason="needs qemu-img")
def test_backing_store_overlay(vsh, vsh_env, files, fake_start):
    res = vsh("install", "--name", "o1", "--boot", "hd", "--disk",
              f"backing_store={files / 'base.qcow2'}", "--noautoconsole")
    assert res.status == 0, res
    overlay = vsh_env.store / "data" / "images" / "o1.qcow2"
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == str(files / "base.qcow2") and info["backing-filename-format"] == "qcow2"
    xml = vsh("dumpxml", "o1").out
    assert f"<backingStore type='file'>\n        <format type='qcow2'/>\n        <source file='{files / 'base.qcow2'}'/>" \
        in xml
    schema_ok(xml)


# ---- cloud-init seeds ----------------------------------------------------------------------------


def test_seed_from_user_files(vsh, vsh_env, files, fake_start, tmp_path):
    from vsh.core.cloudinit import read_seed

    ud, md, nc = tmp_path / "ud", tmp_path / "md", tmp_path / "nc"
    ud.write_text("#cloud-config\nruncmd: [touch, /x]\n")
    md.write_text("instance-id: i-42\nlocal-hostname: seeded\n")
    nc.write_text("version: 2\nethernets: {}\n")
    res = vsh("install", "--name", "s1", "--import", "--disk", str(files / "disk.raw"), "--cloud-init",
              f"user-data={ud},meta-data={md},network-config={nc}", "--noautoconsole")
    assert res.status == 0, res
    seed = vsh_env.store / "data" / "images" / "s1-cidata.iso"
    assert f"Seed '{seed}' created" in res.out
    volid, content = read_seed(seed.read_bytes())
    assert volid == "cidata"
    assert content == {"user-data": ud.read_bytes(), "meta-data": md.read_bytes(), "network-config": nc.read_bytes()}
    if subprocess.run(["which", "isoinfo"], capture_output=True).returncode == 0:
        out = subprocess.run(["isoinfo", "-d", "-i", str(seed)], capture_output=True, text=True).stdout
        assert "Volume id: cidata" in out
    # the seed stays in the persistent definition: a restart boots with it again
    assert f"<source file='{seed}'/>" in vsh("dumpxml", "s1", "--inactive").out


def test_seed_generated_for_root_key_and_password(vsh, vsh_env, files, fake_start, tmp_path):
    from vsh.core.cloudinit import read_seed

    key = tmp_path / "k.pub"
    key.write_text("# mine\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample me@host\n")
    res = vsh("install", "--name", "Web Server_1", "--import", "--disk", str(files / "disk.raw"),
              "--cloud-init", f"root-ssh-key={key},root-password-generate=on", "--noautoconsole", "--json")
    assert res.status == 0, res
    data = json.loads(res.out)
    password = data["root_password"]
    assert len(password) == 16
    _volid, content = read_seed((vsh_env.store / "data" / "images" / "Web Server_1-cidata.iso").read_bytes())
    ud = content["user-data"].decode()
    assert ud.startswith("#cloud-config\n")
    assert '- "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample me@host"' in ud
    assert f'password: "{password}"' in ud
    uuid = vsh("domuuid", "Web Server_1").out.strip()
    assert content["meta-data"].decode() == f"instance-id: vsh-{uuid}\nlocal-hostname: web-server-1\n"
    # without --json the password is printed even with -q (it is shown nowhere else)
    res = vsh("-q", "install", "--name", "p2", "--import", "--disk", str(files / "disk.raw"),
              "--cloud-init", "root-password-generate=on", "--noautoconsole")
    assert res.status == 0 and "Generated root password for the first boot (cloud-init): " in res.out


@pytest.mark.parametrize("spec, message", [
    ("root-ssh-key=@priv", "is a private key"),
    ("root-ssh-key=@empty", "holds no SSH public key"),
    ("user-data=@empty,root-password-generate=on", "cannot be combined"),
    ("meta-data=@empty", "give user-data=FILE"),
    ("disable=on", "stays attached"),
])
def test_cloud_init_errors(vsh, tmp_path, files, spec, message, store_tree):
    (tmp_path / "priv").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    (tmp_path / "empty").write_text("")
    before = store_tree()
    res = vsh("install", "--name", "e", "--import", "--disk", str(files / "disk.raw"),
              "--cloud-init", spec.replace("@", str(tmp_path) + "/"))
    assert res.status == 1 and message in res.err, res
    assert store_tree() == before


def test_seed_of_another_domain_is_not_replaced(vsh, vsh_env, files, fake_start, tmp_path):
    key = tmp_path / "k.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample me@host\n")
    images = vsh_env.store / "data" / "images"
    assert vsh("install", "--name", "a", "--import", "--disk", str(files / "disk.raw"), "--cloud-init",
               f"root-ssh-key={key}", "--noautoconsole").status == 0
    # another domain uses a-cidata.iso as its disk; an install named 'a' again must not overwrite it
    assert vsh("domrename", "a", "b").status == 0
    res = vsh("install", "--name", "a", "--import", "--disk", str(files / "disk.raw"), "--cloud-init",
              f"root-ssh-key={key}", "--noautoconsole")
    assert res.status == 1 and "is a disk of domain 'b'" in res.err
    assert (images / "a-cidata.iso").exists()


# ---- the API: conn.installer ---------------------------------------------------------------------


def _options(**given) -> dict:
    """The options dict as the command hands it over (every key, None where not given)."""
    opts = dict(name=None, memory=None, vcpus=None, cpu=None, disk=[], cdrom=None, boot=None, network=None,
                graphics=None, console=None, rng=None, os_variant=None, virt_type=None, machine=None,
                cloud_init=None, uuid=None, import_=False)
    opts.update(given)
    return opts


def test_installer_os_variants_and_plan_are_plain_data(vsh_env, store_tree):
    from vsh import api

    before = store_tree()
    installer = api.connect(vsh_env.uri).installer
    variants = installer.os_variants()
    assert [v["name"] for v in variants] == list(inst.OS_VARIANTS)
    assert variants[0] == {"name": "debian12", "label": "Debian 12 (bookworm)", "memory": 1024, "disk": 20,
                           "vcpus": 1, "machine": "q35", "disk_bus": "virtio", "nic_model": "virtio",
                           "guest_agent": True}
    plan = installer.plan(_options(name="p", uuid=UUID, boot="hd", disk=["size=1"],
                                   cloud_init="root-password-generate=on"))
    assert json.loads(json.dumps(plan)) == plan
    images = f"{vsh_env.store}/data/images"
    assert (plan["name"], plan["uuid"], plan["nvram"]) == ("p", UUID, None)
    assert plan["disks"] == [{"path": f"{images}/p.qcow2", "format": "qcow2", "size": inst.GIB, "backing": None,
                              "backing_format": None}]
    assert plan["seed"] == f"{images}/p-cidata.iso"
    assert plan["would_create"] == [f"{images}/p.qcow2", f"{images}/p-cidata.iso"]
    assert len(plan["root_password"]) == 16
    assert etree.fromstring(plan["xml"].encode()).findtext("name") == "p"
    assert installer.plan(_options(name="p", boot="hd", disk=["size=1"]), check=True)["name"] == "p"
    assert store_tree() == before  # planning, checked or not, creates nothing


@pytest.mark.skipif(not HAVE_QEMU_IMG, reason="needs qemu-img")
def test_installer_create_and_discard(vsh_env, store_tree):
    from vsh import api

    before = store_tree()
    conn = api.connect(vsh_env.uri)
    made = conn.installer.create(_options(name="m", uuid=UUID, boot="hd", disk=["size=0.01"]), autostart=True)
    assert json.loads(json.dumps(made)) == made
    image = f"{vsh_env.store}/data/images/m.qcow2"
    xml = made.pop("xml")
    assert etree.fromstring(xml.encode()).findtext("name") == "m"
    assert made == {"name": "m", "uuid": UUID, "created": [image], "disks": [image],
                    "new_disks": [{"path": image, "format": "qcow2", "size": 10737664, "backing": None,
                                   "backing_format": None}], "seed": None, "root_password": None,
                    "install_xml": None, "boot_files": [], "transient": False}
    info = conn.lookup_domain("m").info()
    assert os.path.exists(image)
    assert (info["state"], info["autostart"]) == ("shut off", True)  # defined, not started: the caller's next step
    with pytest.raises(VshError, match="domain 'm' already exists"):
        conn.installer.plan(_options(name="m", boot="hd", disk=["size=0.01"]), check=True)
    conn.installer.discard(made)
    assert conn.store.find("m") is None and not os.path.exists(image)
    left = [k for k in store_tree() if k not in before and not k.endswith("/")]
    assert [k for k in left if k.startswith(("config/domains/", "config/autostart/", "data/images/"))] == [], left
    conn.installer.discard(made)  # twice: nothing is left to undo, nothing is raised


@pytest.mark.skipif(not HAVE_QEMU_IMG, reason="needs qemu-img")
def test_installer_create_removes_what_it_made_when_a_step_fails(vsh_env, monkeypatch):
    from vsh import api
    from vsh.api.install import NOTHING_KEPT

    conn = api.connect(vsh_env.uri)

    def define(dom):
        raise VshError("internal error: the disk is full")

    monkeypatch.setattr(conn.store, "define", define)
    with pytest.raises(VshError) as err:
        conn.installer.create(_options(name="f", boot="hd", disk=["size=0.01"]))
    assert err.value.lines == ("internal error: the disk is full",) and err.value.hint == NOTHING_KEPT
    assert not os.path.exists(f"{vsh_env.store}/data/images/f.qcow2")
