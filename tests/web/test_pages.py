"""The other pages in a real browser: networks, storage pools, Create VM, disks and NICs, the
guest disk browser of a shut-off VM (what a guest's files hold is shown as text, never as HTML)."""

from __future__ import annotations

import re
import subprocess

import pytest

expect = pytest.importorskip("playwright.sync_api").expect

NETWORK = """<network><name>lab</name><forward mode='nat'/><bridge name='vshlab0'/>
<ip address='192.168.150.1' netmask='255.255.255.0'/></network>"""
DOMAIN = """<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>{devices}</devices></domain>"""
HOSTILE_FILE = "<b>bold<i>.txt"
HOSTILE_TEXT = "<script>document.title='pwned'</script><img src=x onerror=alert(2)>"


def conn(vsh_env):
    from vsh import api

    return api.connect(vsh_env.uri)


def test_networks_and_pools(open_web, vsh_env, tmp_path):
    c = conn(vsh_env)
    c.networks.define_xml(NETWORK)
    pool = c.storage.define_pool_as("images", "dir", str(tmp_path / "images"))
    pool.build()
    pool.start()
    pool.create_volume_as("disk1.qcow2", 16 * 1024 * 1024, format="qcow2")
    srv, br = open_web()
    page = br.page
    page.goto(srv.url)
    page.click("#nav-networks")
    row = page.locator("#net-rows tr[data-name='lab']")
    expect(row).to_contain_text("inactive")
    expect(row).to_contain_text("vshlab0")
    row.locator("button[data-action='autostart']").click()
    expect(page.locator("#net-rows tr[data-name='lab'] button[data-action='noautostart']")).to_be_visible()
    assert c.networks.lookup("lab").info()["autostart"] is True
    page.click("#nav-pools")
    expect(page.locator("#pool-rows tr[data-name='images']")).to_contain_text("running")
    page.click("#pool-rows tr[data-name='images'] a")
    expect(page.locator("#volume-rows tr[data-name='disk1.qcow2']")).to_contain_text(str(tmp_path / "images" / "disk1.qcow2"))
    page.click("#pool-rows tr[data-name='images'] button[data-action='stop']")
    expect(page.locator("#pool-rows tr[data-name='images']")).to_contain_text("inactive")


def test_create_a_vm_from_the_form(open_web, vsh_env, tmp_path):
    disk = tmp_path / "root.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    srv, br = open_web()
    page = br.page
    page.goto(srv.url)
    page.click("#nav-create")
    page.fill("#c-name", "made")
    page.fill("#c-memory", "128")
    page.fill("#c-disk", f"path={disk}")
    page.check("#c-import")
    page.click("#c-plan")
    expect(page.locator("#create-output")).to_contain_text("<name>made</name>")
    assert "made" not in [d["name"] for d in conn(vsh_env).list_domains()]
    page.click("#c-create-edit")
    expect(page.locator("#xml-text")).to_have_value(re.compile("<name>made</name>"))
    dom = conn(vsh_env).lookup_domain("made")
    assert dom.info()["max_memory_kib"] == 128 * 1024
    assert [d["source"] for d in dom.block_devices()] == [str(disk)]


def test_attach_and_detach_a_disk_and_a_nic(open_web, vsh_env, tmp_path):
    extra = tmp_path / "extra.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(extra), "8M"], check=True)
    conn(vsh_env).define_xml(DOMAIN.format(name="dev1", devices=""))
    srv, br = open_web()
    page = br.page
    page.goto(srv.url)
    page.goto(f"{srv.origin}/#/vm/dev1/devices")
    page.fill("#disk-source", str(extra))
    page.fill("#disk-target", "vdb")
    page.click("#disk-attach")
    expect(page.locator("#disk-rows tr[data-target='vdb']")).to_contain_text(str(extra))
    page.click("#nic-attach")                            # user networking
    expect(page.locator("#nic-rows tr")).to_have_count(1)
    dom = conn(vsh_env).lookup_domain("dev1")
    assert [d["target"] for d in dom.block_devices(inactive=True)] == ["vdb"]
    assert len(dom.interfaces(inactive=True)) == 1
    page.click("#disk-rows tr[data-target='vdb'] button.detach")
    expect(page.locator("#disk-rows tr")).to_have_count(0)
    page.click("#nic-rows tr button.detach")
    expect(page.locator("#nic-rows tr")).to_have_count(0)
    assert dom.block_devices(inactive=True) == [] and dom.interfaces(inactive=True) == []


def test_the_guest_disk_browser_shows_files_as_text(open_web, vsh_env, tmp_path):
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "hostname").write_text("webguest\n")
    (tree / HOSTILE_FILE).write_text(HOSTILE_TEXT)
    image = tmp_path / "fs.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(tree), str(image), "8M"], check=True)
    conn(vsh_env).define_xml(DOMAIN.format(name="files1", devices=(
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{image}'/>"
        f"<target dev='vda' bus='virtio'/></disk>")))
    srv, br = open_web()
    page = br.page
    page.goto(srv.url)
    page.goto(f"{srv.origin}/#/vm/files1/files")
    expect(page.locator("#guest-fs")).to_contain_text("ext4", timeout=30000)
    page.click("#guest-files tr[data-file='etc'] a.dir")
    expect(page.locator("#guest-path")).to_have_text("/etc")
    page.click("#guest-files tr[data-file='hostname'] a.file")
    expect(page.locator("#guest-preview")).to_have_text("webguest\n")
    page.click("#guest-files a >> text=..")
    page.click(f"#guest-files tr[data-file='{HOSTILE_FILE}'] a.file")
    expect(page.locator("#guest-preview")).to_have_text(HOSTILE_TEXT)
    assert page.locator("#guest-files b, #guest-preview img, #guest-preview script").count() == 0
    assert page.title() != "pwned" and br.dialogs == []
    with page.expect_download() as got:
        page.click(f"#guest-files tr[data-file='{HOSTILE_FILE}'] a[download]")
    assert open(got.value.path(), encoding="utf-8").read() == HOSTILE_TEXT
