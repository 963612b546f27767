"""The VM list in a real browser (Debian's chromium, headless): the tokened URL, live updates,
the filter, actions and the rule that nothing from a guest or a user is inserted as HTML."""

from __future__ import annotations

import re

import pytest

expect = pytest.importorskip("playwright.sync_api").expect

HOSTILE = "<img src=x onerror=alert(1)>"
DOMAIN = """<domain type='qemu'><name>{name}</name><memory unit='MiB'>{mib}</memory><vcpu>{cpus}</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"""


def define(uri: str, name: str, mib: int = 64, cpus: int = 1):
    from xml.sax.saxutils import escape

    from vsh import api

    return api.connect(uri).define_xml(DOMAIN.format(name=escape(name), mib=mib, cpus=cpus))


@pytest.fixture
def web(open_web, vsh_env):
    for name, mib, cpus in (("alpha", 256, 2), ("beta", 64, 1), (HOSTILE, 128, 1)):
        define(vsh_env.uri, name, mib, cpus)
    return open_web()


def rows(page) -> list[list[str]]:
    return page.eval_on_selector_all("#vm-rows tr", "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))")


def test_the_list_shows_the_domains_and_hostile_names_as_text(web, vsh_env):
    srv, br = web
    page = br.page
    page.goto(srv.url)
    assert page.url == srv.origin + "/"          # the token left the address bar
    page.wait_for_selector("#vm-rows tr[data-name='alpha']")
    got = {r[0]: r[1:5] for r in rows(page)}
    assert got["alpha"] == ["shut off", "2", "256 MiB", ""]
    assert got["beta"] == ["shut off", "1", "64 MiB", ""]
    assert HOSTILE in got                        # shown as the text it is
    assert page.locator("#vm-rows img").count() == 0
    assert br.dialogs == []
    # the page's URI line and no CSP violation of the page's own code
    expect(page.locator("#uri")).to_contain_text("vsh:///session")
    assert not [m for m in br.console if "Content Security Policy" in m]


def test_live_updates_filter_and_delete(web, vsh_env):
    srv, br = web
    page = br.page
    page.goto(srv.url)
    page.wait_for_selector("#vm-rows tr[data-name='alpha']")
    page.wait_for_selector("#live.on")
    define(vsh_env.uri, "gamma", 32)             # defined by someone else: the page learns of it
    page.wait_for_selector("#vm-rows tr[data-name='gamma']", timeout=15000)
    page.fill("#filter", "gam")
    assert [r[0] for r in rows(page)] == ["gamma"]
    page.fill("#filter", "")
    page.click("#vm-rows tr[data-name='gamma'] button[data-action='delete']")
    page.click("#delete-confirm")
    page.wait_for_selector("#vm-rows tr[data-name='gamma']", state="detached", timeout=15000)
    from vsh import api

    assert "gamma" not in [d["name"] for d in api.connect(vsh_env.uri).list_domains()]


def test_the_vm_page_overview_edits_and_the_xml_editor_validates(web, vsh_env):
    srv, br = web
    page = br.page
    page.goto(srv.url)
    page.click("#vm-rows tr[data-name='beta'] td.name a")
    page.wait_for_selector("#edit-memory")
    # define writes the canonical machine type, as libvirt does (pc → pc-i440fx-N.M)
    expect(page.locator("#vm-firmware")).to_have_text(re.compile(r"^BIOS, machine pc-i440fx-\d+\.\d+$"))
    page.fill("#edit-memory", "96")
    page.click("#save-memory")
    page.wait_for_selector("#notice.info")
    from vsh import api

    assert api.connect(vsh_env.uri).lookup_domain("beta").info()["max_memory_kib"] == 96 * 1024
    page.click("#tab-xml")
    expect(page.locator("#xml-text")).to_have_value(re.compile("<name>beta</name>"))
    page.fill("#xml-text", "<domain><name>beta</broken>")
    expect(page.locator("#xml-status")).to_contain_text("not well-formed: XML error: ")     # as you type
    page.click("#xml-save")
    page.wait_for_selector("#notice.error")
    assert "not well-formed" in page.text_content("#notice")
    text = api.connect(vsh_env.uri).lookup_domain("beta").xml(inactive=True)
    page.fill("#xml-text", text.replace("<vcpu placement='static'>1</vcpu>", "<vcpu placement='static'>3</vcpu>")
              .replace("<vcpu>1</vcpu>", "<vcpu>3</vcpu>"))
    page.click("#xml-save")
    page.wait_for_selector("#notice.info")
    assert api.connect(vsh_env.uri).lookup_domain("beta").info()["cpus"] == 3
    # a definition the server refuses (the hostile name is not this domain's uuid): its words shown
    page.fill("#xml-text", text.replace("<memory", "<memory unit='bogus'", 1) if "unit=" not in text
              else text.replace("unit='KiB'", "unit='bogus'", 1))
    page.click("#xml-save")
    page.wait_for_selector("#notice.error")
    assert api.connect(vsh_env.uri).lookup_domain("beta").info()["cpus"] == 3
