"""The web console on a real guest, in a real browser: Debian's chromium headless, a TCG test guest
(tests/vmguest.py), a `vsh web` process on loopback. In file order: see the list, start the guest,
type into the serial console and read the answer, copy and paste there, resize a disk live, take
and revert a snapshot, watch the VNC canvas paint, shut down and force off. No test may make the
page break its Content-Security-Policy. Screenshots of failures land in the test's tmp dir."""

from __future__ import annotations

import re
import subprocess

import pytest

pytestmark = pytest.mark.vm
expect = pytest.importorskip("playwright.sync_api").expect
NAME = "web1"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, web_helpers):
    pytest.importorskip("aiohttp")
    webserver, browser_mod, vmguest = web_helpers.webserver, web_helpers.browser, web_helpers.vmguest
    why = browser_mod.available()
    if why:
        pytest.skip(why)
    m, base, store, env = vmguest.module_store(tmp_path_factory, "web")
    disk = base / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    devices = f"""<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='{disk}'/><target dev='vda' bus='virtio'/></disk>
    <graphics type='vnc'/>
    <video><model type='vga'/></video>"""
    xml = base / f"{NAME}.xml"
    xml.write_text(vmguest.guest_domain_xml(NAME, m, devices))
    guest = vmguest.Guest(store, NAME, env)
    guest.vsh("define", xml)
    srv = webserver.Server(env)
    br = browser_mod.Browser()
    try:
        yield srv, br, guest, m, base
    finally:
        br.close()
        srv.stop()
        guest.vsh("destroy", NAME, check=False)


@pytest.fixture
def web(setup, request):
    srv, br, guest, m, base = setup
    request.node.vsh_browser = br
    request.node.vsh_tmp = base
    since = len(br.console)
    yield setup
    violations = br.csp_violations(since)
    assert not violations, "the page broke its Content-Security-Policy:\n" + "\n".join(violations)


def row(page):
    return page.locator(f"#vm-rows tr[data-name='{NAME}']")


def terminal_text(page) -> str:
    return page.locator("#serial .xterm-rows").text_content() or ""


def type_in_console(page, text: str) -> None:
    page.click("#serial")
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def test_open_the_list_and_start_the_guest(web):
    srv, br, guest, m, _ = web
    page = br.page
    page.goto(srv.url)
    expect(row(page).locator("td.state")).to_have_text("shut off")
    row(page).locator("button[data-action='start']").click()
    expect(row(page).locator("td.state")).to_have_text("running", timeout=60000)
    guest.wait_log(m["ready_line"], timeout=120)


def test_type_into_the_serial_console_and_read_the_answer(web):
    srv, br, guest, m, _ = web
    page = br.page
    page.goto(f"{srv.origin}/#/vm/{NAME}/console")
    expect(page.locator("#serial-status")).to_have_text("connected", timeout=30000)
    type_in_console(page, "echo ANSWER-$((6*7))-END")
    expect(page.locator("#serial .xterm-rows")).to_contain_text("ANSWER-42-END", timeout=30000)
    # a second tab shares the console: both see what either types
    other = br.new_page()
    try:
        other.goto(f"{srv.origin}/#/vm/{NAME}/console")
        expect(other.locator("#serial-status")).to_have_text("connected", timeout=30000)
        type_in_console(other, "echo TWO-$((20+2))-TABS")
        expect(other.locator("#serial .xterm-rows")).to_contain_text("TWO-22-TABS", timeout=30000)
        expect(page.locator("#serial .xterm-rows")).to_contain_text("TWO-22-TABS", timeout=30000)
    finally:
        other.close()


def set_clipboard(page, text: str) -> None:
    page.evaluate("text => navigator.clipboard.writeText(text)", text)


def clipboard(page) -> str:
    return page.evaluate("() => navigator.clipboard.readText()")


def output_row(page, text: str):
    """The terminal row that holds exactly ``text`` (a command's output, not its echo)."""
    return page.locator("#serial .xterm-rows > div", has_text=re.compile(rf"^{re.escape(text)}\s*$")).last


def triple_click(page, row) -> None:
    """Select a terminal row as a user does (the rows let the mouse through to xterm's screen)."""
    box = row.bounding_box()
    page.mouse.click(box["x"] + 4, box["y"] + box["height"] / 2, click_count=3)


def test_copy_and_paste_in_the_serial_console(web):
    srv, br, guest, m, _ = web
    page = br.page
    br.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=srv.origin)
    page.goto(f"{srv.origin}/#/vm/{NAME}/console")
    expect(page.locator("#serial-status")).to_have_text("connected", timeout=30000)
    # paste: the Paste button and Ctrl+Shift+V send the clipboard to the guest as typed text
    set_clipboard(page, "echo PASTED-$((3*3))-BUTTON\n")
    page.click("#serial-paste")
    expect(output_row(page, "PASTED-9-BUTTON")).to_be_visible(timeout=30000)
    set_clipboard(page, "echo PASTED-$((4*4))-KEYS\n")
    page.click("#serial")
    page.keyboard.press("Control+Shift+V")
    expect(output_row(page, "PASTED-16-KEYS")).to_be_visible(timeout=30000)
    # copy: a line selected with the mouse (triple click) goes to the clipboard with the
    # Copy button, and with Ctrl+Shift+C
    set_clipboard(page, "")
    triple_click(page, output_row(page, "PASTED-9-BUTTON"))
    page.click("#serial-copy")
    assert clipboard(page).strip() == "PASTED-9-BUTTON"
    triple_click(page, output_row(page, "PASTED-16-KEYS"))
    page.keyboard.press("Control+Shift+C")
    page.wait_for_function("() => navigator.clipboard.readText().then(t => t.includes('PASTED-16-KEYS'))")
    assert clipboard(page).strip() == "PASTED-16-KEYS"


def test_resize_a_disk_of_the_running_guest(web):
    srv, br, guest, m, _ = web
    page = br.page
    page.goto(f"{srv.origin}/#/vm/{NAME}/devices")
    disk = page.locator("#disk-rows tr[data-target='vda']")
    expect(disk.locator("td.capacity")).to_have_text("16 MiB", timeout=30000)
    disk.locator("input.resize-size").fill("24M")
    disk.locator("button.resize").click()
    expect(disk.locator("td.capacity")).to_have_text("24 MiB", timeout=30000)
    # QEMU's block_resize: the guest sees the new size at once (in 512-byte sectors)
    page.goto(f"{srv.origin}/#/vm/{NAME}/console")
    expect(page.locator("#serial-status")).to_have_text("connected", timeout=30000)
    type_in_console(page, "echo SIZE-$(cat /sys/block/vda/size)-SECTORS")
    expect(page.locator("#serial .xterm-rows")).to_contain_text(f"SIZE-{24 * 2048}-SECTORS", timeout=30000)


def test_usage_graphs_draw_samples_over_time(web):
    srv, br, guest, m, _ = web
    page = br.page
    page.goto(f"{srv.origin}/#/vm/{NAME}/usage")
    for graph in ("cpu", "memory", "disk", "net"):
        expect(page.locator(f"#graph-{graph}")).to_be_visible()
    expect(page.locator("#graph-cpu-label")).to_contain_text("%", timeout=30000)
    expect(page.locator("#graph-memory-label")).to_contain_text("MiB", timeout=30000)
    expect(page.locator("#graph-disk-label")).to_contain_text("/s", timeout=30000)


def test_take_and_revert_a_snapshot(web):
    srv, br, guest, m, _ = web
    page = br.page
    page.goto(f"{srv.origin}/#/vm/{NAME}/snapshots")
    page.fill("#snapshot-name", "before")
    page.click("#snapshot-create")
    expect(page.locator("#snapshot-tree li[data-snapshot='before']")).to_be_visible(timeout=120000)
    page.goto(f"{srv.origin}/#/vm/{NAME}/console")
    expect(page.locator("#serial-status")).to_have_text("connected", timeout=30000)
    type_in_console(page, "touch /tmp/marker; echo MADE-$((1+1))")
    expect(page.locator("#serial .xterm-rows")).to_contain_text("MADE-2", timeout=30000)
    page.goto(f"{srv.origin}/#/vm/{NAME}/snapshots")
    page.click("#snapshot-tree li[data-snapshot='before'] .snap-revert")
    expect(page.locator("#notice")).to_contain_text("reverted to before", timeout=120000)
    page.goto(f"{srv.origin}/#/vm/{NAME}/console")
    expect(page.locator("#serial-status")).to_have_text("connected", timeout=60000)
    type_in_console(page, "test -e /tmp/marker && echo STILL-$((3+3)) || echo GONE-$((4+4))")
    expect(page.locator("#serial .xterm-rows")).to_contain_text("GONE-8", timeout=60000)
    assert "STILL-6" not in terminal_text(page)


CANVAS_PAINTED = """canvas => {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let lit = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 150) lit++;
    return [canvas.width, canvas.height, lit];
}"""


def test_the_graphical_console_paints_the_vga_screen(web):
    srv, br, guest, m, _ = web
    page = br.page
    page.goto(f"{srv.origin}/#/vm/{NAME}/display")
    expect(page.locator("#vnc-status")).to_have_text("connected", timeout=30000)
    canvas = page.locator("#vnc canvas")
    painted = None
    for _ in range(150):
        width, height, lit = canvas.evaluate(CANVAS_PAINTED)
        if width >= 640 and lit > 50:
            painted = (width, height, lit)
            break
        page.wait_for_timeout(200)
    assert painted, "the VNC canvas never showed the guest's screen"
    # Ctrl-Alt-Del reaches the guest, whose init reboots it; both consoles come back
    booted = guest.log().count(m["ready_line"])
    page.click("#vnc-cad")
    guest.wait_log(m["ready_line"], count=booted + 1, timeout=120)
    expect(page.locator("#vnc-status")).to_have_text("connected", timeout=30000)
    page.goto(f"{srv.origin}/#/vm/{NAME}/console")
    expect(page.locator("#serial-status")).to_have_text("connected", timeout=30000)
    type_in_console(page, "echo AFTER-$((50+5))-REBOOT")
    expect(page.locator("#serial .xterm-rows")).to_contain_text("AFTER-55-REBOOT", timeout=30000)


def test_shut_down_then_force_off(web):
    srv, br, guest, m, _ = web
    page = br.page
    page.goto(srv.url.split("?")[0])
    expect(row(page).locator("td.state")).to_have_text("running")
    row(page).locator("button[data-action='shutdown']").click()
    expect(row(page).locator("td.state")).to_have_text("shut off", timeout=90000)
    row(page).locator("button[data-action='start']").click()
    expect(row(page).locator("td.state")).to_have_text("running", timeout=60000)
    row(page).locator("button[data-action='destroy']").click()     # confirm() is accepted
    expect(row(page).locator("td.state")).to_have_text("shut off", timeout=60000)
    assert re.search(r"confirm: Force off web1", "\n".join(br.dialogs))
