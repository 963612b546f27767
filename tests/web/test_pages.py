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


def vm_with_disk(open_web, vsh_env, name: str, image, fmt: str, tab: str):
    """Define ``name`` with ``image`` as its vda, open a browser on the VM page's ``tab``: the browser."""
    conn(vsh_env).define_xml(DOMAIN.format(name=name, devices=(
        f"<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/><source file='{image}'/>"
        f"<target dev='vda' bus='virtio'/></disk>")))
    srv, br = open_web()
    page = br.page
    page.goto(srv.url)
    page.goto(f"{srv.origin}/#/vm/{name}/{tab}")
    return br


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


def create_form(open_web, name: str, disk):
    """The Create VM form in a new browser, filled with a name, 128 MiB and an existing disk."""
    srv, br = open_web()
    page = br.page
    page.goto(srv.url)
    page.click("#nav-create")
    page.fill("#c-name", name)
    page.fill("#c-memory", "128")
    page.fill("#c-disk", f"path={disk}")
    return page


def test_create_a_vm_from_the_form(open_web, vsh_env, tmp_path):
    disk = tmp_path / "root.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    page = create_form(open_web, "made", disk)
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
    br = vm_with_disk(open_web, vsh_env, "files1", image, "raw", "files")
    page = br.page
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


TRUECOLOR = "\\x1b[38;2;255;0;0mRED-TEXT\\x1b[0m \\x1b[48;2;0;0;255mBLUE-BACK\\x1b[0m\\r\\n"


def test_the_serial_console_renders_under_the_policy(open_web, vsh_env):
    """xterm.js's renderer rules and 24-bit colours take effect without one CSP violation (the
    console listener fails the test on any, through the open_web fixture, and here directly)."""
    conn(vsh_env).define_xml(DOMAIN.format(name="csp1", devices=""))
    srv, br = open_web()
    page = br.page
    page.goto(srv.url)
    page.goto(f"{srv.origin}/#/vm/csp1/console")
    expect(page.locator("#serial .xterm-rows")).to_be_visible()
    expect(page.locator("#serial-status")).to_contain_text("not running", timeout=30000)
    page.evaluate(f"""() => new Promise((done) =>
        document.getElementById("serial").vshTerminal.write("{TRUECOLOR}", done))""")
    red = page.locator("#serial .xterm-rows span", has_text="RED-TEXT")
    expect(red).to_have_css("color", "rgb(255, 0, 0)")
    expect(page.locator("#serial .xterm-rows span", has_text="BLUE-BACK")).to_have_css(
        "background-color", "rgb(0, 0, 255)")
    # the rules xterm writes for its rows apply (only they set these two)
    assert page.locator("#serial .xterm-rows").evaluate(
        "el => [getComputedStyle(el).pointerEvents, getComputedStyle(el).fontSize]") == ["none", "14px"]
    assert page.locator("#serial style").count() == 0
    # leaving the page drops the terminal's style sheets again
    page.goto(f"{srv.origin}/#/vm/csp1/overview")
    expect(page.locator("#serial")).to_have_count(0)
    assert page.evaluate("() => document.adoptedStyleSheets.length") == 0
    assert br.csp_violations() == []


def virtual_size(path) -> int:
    import json

    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)["virtual-size"]


def test_resize_a_disk_of_a_shut_off_vm(open_web, vsh_env, tmp_path):
    disk = tmp_path / "grow.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    page = vm_with_disk(open_web, vsh_env, "grow1", disk, "qcow2", "devices").page
    disk_row = page.locator("#disk-rows tr[data-target='vda']")
    expect(disk_row.locator("td.capacity")).to_have_text("16 MiB")
    disk_row.locator("input.resize-size").fill("40M")
    disk_row.locator("button.resize").click()
    expect(disk_row.locator("td.capacity")).to_have_text("40 MiB")
    assert virtual_size(disk) == 40 * 1024 * 1024
    # a size that is not one: the error shows, nothing changes
    disk_row.locator("input.resize-size").fill("lots")
    disk_row.locator("button.resize").click()
    expect(page.locator("#notice")).to_contain_text("'lots'")
    assert virtual_size(disk) == 40 * 1024 * 1024


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample me@host"


def seed_of(vsh_env, name):
    """The cloud-init seed disk of domain ``name`` (its path) and the files in it."""
    from vsh.core.cloudinit import read_seed

    disks = conn(vsh_env).lookup_domain(name).block_devices(inactive=True)
    seeds = [d for d in disks if d["device"] == "cdrom" and (d["source"] or "").endswith(f"{name}-cidata.iso")]
    assert len(seeds) == 1, disks
    with open(seeds[0]["source"], "rb") as f:
        volid, files = read_seed(f.read())
    assert volid == "cidata"
    return seeds[0]["source"], files


def test_create_a_vm_with_cloud_init_from_the_form(open_web, vsh_env, tmp_path):
    disk, disk2 = tmp_path / "cloud.qcow2", tmp_path / "cloud2.qcow2"
    for path in (disk, disk2):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    page = create_form(open_web, "cloudy", disk)
    page.fill("#c-user", "alice")
    page.fill("#c-password", "s3cret pass")
    page.fill("#c-ssh-key", KEY)
    page.click("#c-plan")
    expect(page.locator("#create-output")).to_contain_text("cloudy-cidata.iso")
    page.click("#c-create-edit")
    expect(page.locator("#xml-text")).to_have_value(re.compile("cloudy-cidata.iso"))
    _path, files = seed_of(vsh_env, "cloudy")
    ud = files["user-data"].decode()
    assert '  - name: "alice"\n' in ud and f'      - "{KEY}"\n' in ud and 'password: "s3cret pass"' in ud
    assert b"local-hostname: cloudy\n" in files["meta-data"]
    # a generated password is shown once, on the page
    page.click("#nav-create")
    page.fill("#c-name", "cloudy2")
    page.fill("#c-disk", f"path={disk2}")
    page.check("#c-password-generate")
    page.click("#c-create-edit")
    expect(page.locator("#xml-text")).to_have_value(re.compile("cloudy2-cidata.iso"))
    expect(page.locator("#notice")).to_contain_text("created cloudy2; password for the first boot: ")
    password = page.locator("#notice").text_content().rsplit(": ", 1)[1]
    _path, files = seed_of(vsh_env, "cloudy2")
    assert f'    - name: root\n      password: "{password}"' in files["user-data"].decode()
