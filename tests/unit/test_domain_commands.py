"""The definition and query commands of issue 2, with virsh's formats and messages."""

import json
import os

import pytest

from vsh.registry import Registry, registry

UUIDS = {name: f"5a1e0000-0000-4000-8000-{i:012d}" for i, name in enumerate(
    ["zeta", "Beta", "alpha", "mid", "r1", "r2", "vm1"], start=1)}


def fake_running(vsh_env, name: str, dom_id: int, xml: str | None = None, reason: str = "booted") -> None:
    """Make the store believe ``name`` runs (state.json as the supervisor writes it, owned by us)."""
    from vsh.core.store import boot_id

    rundir = vsh_env.store / "run" / name
    rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = {"state": "running", "reason": reason, "id": dom_id, "supervisor_pid": os.getpid(),
             "boot_id": boot_id(), "transient": xml is not None}
    (rundir / "state.json").write_text(json.dumps(state))
    if xml is None:
        xml = (vsh_env.domains / f"{name}.xml").read_text()
    (rundir / "live.xml").write_text(xml.replace("<domain type='qemu'>", f"<domain type='qemu' id='{dom_id}'>", 1))


@pytest.fixture
def many(define, vsh_env, make_xml):
    for name in ("zeta", "Beta", "alpha", "mid", "r1", "r2"):
        define(name, uuid=UUIDS[name])
    fake_running(vsh_env, "r2", 5)
    fake_running(vsh_env, "r1", 2)


# -- list -------------------------------------------------------------------------------------------


def test_list_order(vsh, many):
    assert vsh("list", "--all").out == (" Id   Name    State\n"
                                        "------------------------\n"
                                        " 2    r1      running\n"
                                        " 5    r2      running\n"
                                        " -    alpha   shut off\n"
                                        " -    Beta    shut off\n"
                                        " -    mid     shut off\n"
                                        " -    zeta    shut off\n\n")


def test_list_default_is_active_only(vsh, many):
    assert vsh("list").out == " Id   Name   State\n----------------------\n 2    r1     running\n 5    r2     running\n\n"
    assert vsh("list", "--table").out == vsh("list").out


def test_list_inactive(vsh, many):
    assert vsh("--quiet", "list", "--inactive", "--name").out == "alpha\nBeta\nmid\nzeta\n"


def test_list_name_uuid_id(vsh, many):
    assert vsh("list", "--all", "--name").out == "r1\nr2\nalpha\nBeta\nmid\nzeta\n\n"
    assert vsh("list", "--all", "--uuid").out == "".join(
        UUIDS[n] + "\n" for n in ("r1", "r2", "alpha", "Beta", "mid", "zeta")) + "\n"
    assert vsh("list", "--all", "--id").out == "2\n5\n\n"
    assert vsh("list", "--all", "--name", "--uuid").out.splitlines()[0] == f"{UUIDS['r1']} r1"
    assert vsh("list", "--id", "--name").out == "2 r1\n5 r2\n\n"


def test_list_filters(vsh, many, vsh_env, make_xml):
    fake_running(vsh_env, "tr", 9, xml=make_xml("tr"))  # transient: no config
    assert vsh("-q", "list", "--all", "--state-running", "--name").out == "r1\nr2\ntr\n"
    assert vsh("-q", "list", "--all", "--state-shutoff", "--name").out == "alpha\nBeta\nmid\nzeta\n"
    assert vsh("-q", "list", "--all", "--transient", "--name").out == "tr\n"
    assert vsh("-q", "list", "--all", "--persistent", "--name").out == "r1\nr2\nalpha\nBeta\nmid\nzeta\n"
    assert vsh("-q", "autostart", "mid").status == 0
    assert vsh("-q", "list", "--all", "--autostart", "--name").out == "mid\n"
    assert "mid" not in vsh("-q", "list", "--all", "--no-autostart", "--name").out


def test_list_title(vsh, define):
    define("t1", title="My Title")
    define("t2")
    out = vsh("list", "--all", "--title").out
    assert out == (" Id   Name   State      Title\n"
                   "----------------------------------\n"
                   " -    t1     shut off   My Title\n"
                   " -    t2     shut off   \n\n")


def test_list_empty(vsh):
    assert vsh("list").out == " Id   Name   State\n--------------------\n\n"
    assert vsh("list", "--name").out == "\n"


def test_list_wide_names(vsh, define):
    define("ünïcødé-名前")
    define("test")
    assert vsh("list", "--all").out == (" Id   Name           State\n"
                                        "-------------------------------\n"
                                        " -    test           shut off\n"
                                        " -    ünïcødé-名前   shut off\n\n")


# -- dominfo, domstate and the small queries ---------------------------------------------------------


def test_dominfo_inactive(vsh, define):
    define("vm1", uuid=UUIDS["vm1"])
    assert vsh("dominfo", "vm1").out == ("Id:             -\n"
                                         "Name:           vm1\n"
                                         f"UUID:           {UUIDS['vm1']}\n"
                                         "OS Type:        hvm\n"
                                         "State:          shut off\n"
                                         "CPU(s):         1\n"
                                         "Max memory:     65536 KiB\n"
                                         "Used memory:    65536 KiB\n"
                                         "Persistent:     yes\n"
                                         "Autostart:      disable\n"
                                         "Managed save:   no\n"
                                         "Security model: none\n"
                                         "Security DOI:   0\n\n")


def test_dominfo_by_uuid_and_id(vsh, many):
    by_name = vsh("dominfo", "r1").out
    assert vsh("dominfo", UUIDS["r1"]).out == by_name
    assert vsh("dominfo", "2").out == by_name
    assert by_name.startswith("Id:             2\nName:           r1\n")
    assert "CPU time:" in by_name
    assert vsh("dominfo", UUIDS["r1"].replace("-", "")).status == 1  # virsh wants the dashes


def test_domstate(vsh, many):
    assert vsh("domstate", "alpha").out == "shut off\n\n"
    assert vsh("domstate", "--reason", "alpha").out == "shut off (unknown)\n\n"
    assert vsh("domstate", "--reason", "r1").out == "running (booted)\n\n"


def test_domid_domname_domuuid(vsh, many):
    assert vsh("domid", "r1").out == "2\n\n"
    assert vsh("domid", "alpha").out == "-\n\n"
    assert vsh("domid", UUIDS["r2"]).out == "5\n\n"
    assert vsh("domname", "2").out == "r1\n\n"
    assert vsh("domname", UUIDS["alpha"]).out == "alpha\n\n"
    assert vsh("domname", "alpha").err == "error: failed to get domain 'alpha'\n"
    assert vsh("domuuid", "alpha").out == UUIDS["alpha"] + "\n\n"
    assert vsh("domuuid", "5").out == UUIDS["r2"] + "\n\n"


def test_names_are_case_sensitive(vsh, many):
    assert vsh("domstate", "ALPHA").status == 1
    assert vsh("domstate", "Beta").status == 0


# -- desc, autostart, domrename, undefine ------------------------------------------------------------


def test_desc_and_title(vsh, define):
    define("vm1")
    assert vsh("desc", "vm1").out == "No description for domain: vm1\n"
    assert vsh("desc", "vm1", "--title").out == "No title for domain: vm1\n"
    assert vsh("desc", "vm1", "hello", "world", "description").out == "Domain description updated successfully\n"
    assert vsh("desc", "vm1").out == "hello world description\n"
    assert vsh("desc", "vm1", "--title", "My Title").out == "Domain title updated successfully\n"
    assert vsh("desc", "vm1", "--title").out == "My Title\n"
    assert vsh("desc", "vm1", "--config", "--new-desc", "vm1 desc").out == "Domain description updated successfully\n"
    assert vsh("desc", "vm1", "--config").out == "vm1 desc\n"
    assert vsh("-q", "desc", "vm1", "--title").out == "My Title"


def test_desc_title_newline_refused(vsh, define):
    define("vm1")
    res = vsh("desc", "vm1", "--title", "two\nlines")
    assert res.status == 1 and res.err.startswith("error: ")


def test_autostart(vsh, define):
    define("vm1")
    assert vsh("autostart", "vm1").out == "Domain 'vm1' marked as autostarted\n\n"
    assert "Autostart:      enable\n" in vsh("dominfo", "vm1").out
    assert vsh("autostart", "--disable", "vm1").out == "Domain 'vm1' unmarked as autostarted\n\n"
    assert "Autostart:      disable\n" in vsh("dominfo", "vm1").out
    assert vsh("autostart", "nosuch").err == "error: failed to get domain 'nosuch'\n"


def test_domrename(vsh, define, vsh_env):
    define("vm1", uuid=UUIDS["vm1"])
    vsh("autostart", "vm1")
    res = vsh("domrename", "vm1", "vm1-renamed")
    assert (res.status, res.out) == (0, "Domain successfully renamed\n\n")
    assert vsh("-q", "list", "--all", "--name").out == "vm1-renamed\n"
    assert vsh("domuuid", "vm1-renamed").out == UUIDS["vm1"] + "\n\n"
    assert "Autostart:      enable" in vsh("dominfo", "vm1-renamed").out
    assert sorted(p.name for p in vsh_env.domains.iterdir()) == ["vm1-renamed.xml"]
    assert vsh("dumpxml", "vm1-renamed").out.count("<name>vm1-renamed</name>") == 1


def test_domrename_errors(vsh, many):
    res = vsh("domrename", "alpha", "Beta")
    assert res.status == 1 and "already exists" in res.err
    res = vsh("domrename", "r1", "newname")
    assert res.err == "error: Requested operation is not valid: cannot rename active domain\n"
    assert vsh("domrename", "nosuch", "x").err == "error: failed to get domain 'nosuch'\n"


def test_undefine(vsh, define, vsh_env):
    define("vm1")
    vsh("autostart", "vm1")
    res = vsh("undefine", "vm1")
    assert (res.status, res.out) == (0, "Domain 'vm1' has been undefined\n\n")
    assert vsh("list", "--all").out == " Id   Name   State\n--------------------\n\n"
    assert list(vsh_env.domains.iterdir()) == []
    assert not (vsh_env.store / "config" / "autostart" / "vm1").exists()
    assert vsh("undefine", "vm1").err == "error: failed to get domain 'vm1'\n"


def test_define_messages(vsh, vsh_env, make_xml):
    (vsh_env.tmp / "newdom.xml").write_text(make_xml("vm1"))
    res = vsh("define", "newdom.xml")
    assert (res.status, res.out, res.err) == (0, "Domain 'vm1' defined from newdom.xml\n\n", "")
    assert vsh("domstate", "--reason", "vm1").out == "shut off (unknown)\n\n"


def test_domblklist_domiflist_vcpucount(vsh, define):
    define("vm1", vcpu="<vcpu current='1'>2</vcpu>", devices=(
        "<disk type='file' device='disk'><source file='/guest/diskimage1'/><target dev='vda' bus='virtio'/></disk>"
        "<disk type='file' device='cdrom'><target dev='sda' bus='sata'/></disk>"
        "<interface type='network'><mac address='aa:bb:cc:dd:ee:ff'/><source network='default'/>"
        "<target dev='testnet0'/></interface>"))
    assert vsh("domblklist", "vm1").out == (" Target   Source\n"
                                            "-----------------------------\n"
                                            " vda      /guest/diskimage1\n"
                                            " sda      -\n\n")
    assert vsh("domblklist", "--details", "vm1").out.splitlines()[:3] == [
        " Type   Device   Target   Source", "-" * 45, " file   disk     vda      /guest/diskimage1"]
    assert vsh("domiflist", "vm1").out == (" Interface   Type      Source    Model   MAC\n"
                                           "------------------------------------------------------------\n"
                                           " testnet0    network   default   -       aa:bb:cc:dd:ee:ff\n\n")
    assert vsh("vcpucount", "vm1").out == "maximum      config         2\ncurrent      config         1\n\n"


# -- read-only connections -------------------------------------------------------------------------------


def _dummy_args(cmd, vsh_env, domain="vm1"):
    words = []
    for opt in cmd.opts:
        if not opt.required:
            continue
        if opt.kind == "domain":
            value = domain
        elif opt.kind == "file":
            value = str(vsh_env.tmp / "dummy.xml")
        elif opt.kind in ("int", "scaled", "bytes"):
            value = "1"
        elif opt.choices:
            value = opt.choices[0]
        else:
            value = "dummy"
        words += [f"--{opt.name}", value]
    return words


MUTATING = sorted(c.name for c in Registry(use_index=False).commands() if c.mutating)


@pytest.mark.parametrize("name", MUTATING)
def test_readonly_refuses_mutating_commands(vsh, define, vsh_env, store_tree, make_xml, name):
    define("vm1")
    (vsh_env.tmp / "dummy.xml").write_text(make_xml("dummy"))
    cmd = registry().get(name)
    before = store_tree()
    res = vsh("-r", name, *_dummy_args(cmd, vsh_env))
    assert res.status == 1
    assert "error: operation forbidden: read only access prevents " in res.err
    assert store_tree() == before


def test_readonly_allows_queries(vsh, define):
    define("vm1")
    assert vsh("-r", "list", "--all").status == 0
    assert vsh("-r", "dominfo", "vm1").status == 0
    assert vsh("-r", "desc", "vm1").status == 0
    res = vsh("-r", "desc", "vm1", "new text")
    assert res.status == 1 and "read only access prevents" in res.err


def test_connect_readonly(vsh, define, vsh_env):
    define("vm1")
    res = vsh(f"connect {vsh_env.uri} --readonly; undefine vm1")
    assert res.status == 1 and "read only access prevents" in res.err
    res = vsh(f"connect {vsh_env.uri}; uri")
    assert res.out == f"\n{vsh_env.uri}\n\n"


# -- --json on every query command --------------------------------------------------------------------

QUERIES = [
    ["list", "--all"], ["list", "--all", "--name"], ["list", "--all", "--title"], ["dominfo", "vm1"],
    ["domstate", "vm1"], ["domstate", "vm1", "--reason"], ["domid", "vm1"], ["domuuid", "vm1"],
    ["dumpxml", "vm1"], ["dumpxml", "vm1", "--xpath", "/domain/name"], ["domblklist", "vm1"],
    ["domblklist", "vm1", "--details"], ["domiflist", "vm1"], ["vcpucount", "vm1"], ["desc", "vm1"],
    ["desc", "vm1", "--title"], ["uri"], ["hostname"], ["version"], ["pwd"], ["help"], ["help", "list"],
    ["help", "domain"], ["echo", "a", "b"], ["nodeinfo"],
]
BLOCKING = {"console", "event", "edit", "cd", "quit", "complete", "completion", "connect"}


def _more_queries():
    known = {q[0] for q in QUERIES}
    out = []
    for cmd in Registry(use_index=False).commands():
        if cmd.mutating or cmd.hidden or cmd.name in known or cmd.name in BLOCKING or cmd.broken:
            continue
        if cmd.group in ("monitor", "host"):
            out.append([cmd.name])
    return out


@pytest.mark.parametrize("argv", QUERIES + _more_queries(), ids=lambda a: " ".join(a))
@pytest.mark.parametrize("where", ["global", "command"])
def test_json(vsh, define, vsh_env, argv, where):
    define("vm1", devices="<disk type='file' device='disk'><source file='/a.img'/><target dev='vda'/></disk>")
    cmd = registry().get(argv[0])
    if cmd is None:
        pytest.skip(f"{argv[0]} is not available")
    if len(argv) == 1:
        argv = argv + _dummy_args(cmd, vsh_env)
    res = vsh("--json", *argv) if where == "global" else vsh(*argv, "--json")
    if res.status != 0:
        assert res.out == "", "a failed --json command must not print half a document"
        return
    json.loads(res.out)  # exactly one JSON document
    assert res.out.endswith("\n") and not res.out.endswith("\n\n")


def test_json_list_content(vsh, many):
    data = json.loads(vsh("list", "--all", "--json").out)
    assert [d["name"] for d in data] == ["r1", "r2", "alpha", "Beta", "mid", "zeta"]
    assert data[0]["id"] == 2 and data[0]["state"] == "running"
    assert data[2]["uuid"] == UUIDS["alpha"] and data[2]["id"] is None
    assert json.loads(vsh("--json", "list", "--all").out) == data


def test_json_dominfo_content(vsh, define):
    define("vm1", uuid=UUIDS["vm1"])
    data = json.loads(vsh("--json", "dominfo", "vm1").out)
    assert data["name"] == "vm1" and data["uuid"] == UUIDS["vm1"]
    assert data["max_memory_kib"] == 65536 and data["persistent"] is True and data["autostart"] is False


def test_json_errors_go_to_stderr(vsh):
    res = vsh("--json", "dominfo", "nosuch")
    assert (res.status, res.out, res.err) == (1, "", "error: failed to get domain 'nosuch'\n")


def test_quiet_json(vsh, define):
    define("vm1")
    assert json.loads(vsh("-q", "--json", "domstate", "vm1").out) == {"state": "shut off", "reason": "unknown"}
