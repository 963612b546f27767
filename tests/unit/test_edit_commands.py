"""pool-create-as, pool-create, pool-edit and snapshot-edit: virsh's messages, transient pools,
and what an edit may change. Real qemu-img, no VMs; the editor is a sed command."""

import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")


def edit_with(monkeypatch, script: str) -> None:
    monkeypatch.setenv("EDITOR", f"sed -i -e '{script}'")
    monkeypatch.delenv("VISUAL", raising=False)


def test_pool_create_as_makes_a_transient_pool(vsh, vsh_env):
    target = vsh_env.tmp / "scratch"
    res = vsh("pool-create-as", "scratch", "dir", "--target", str(target), "--build")
    assert (res.status, res.out, res.err) == (0, "Pool scratch created\n\n", "")
    assert target.is_dir()
    info = json.loads(vsh("pool-info", "scratch", "--json").out)
    assert (info["active"], info["persistent"], info["autostart"]) == (True, False, False)
    assert vsh("pool-list", "--transient", "--name").out.split() == ["scratch"]
    res = vsh("pool-autostart", "scratch")
    assert res.err == ("error: failed to mark pool scratch as autostarted\n"
                       "error: invalid argument: pool has no config file\n")
    assert vsh("pool-destroy", "scratch").out == "Pool scratch destroyed\n\n"
    res = vsh("pool-info", "scratch")
    assert res.err == "error: failed to get pool 'scratch'\n"
    assert target.is_dir()          # destroying a pool never removes its directory


def test_pool_create_as_refusals(vsh, vsh_env):
    res = vsh("pool-create-as", "p", "dir", "--target", str(vsh_env.tmp / "none"))
    assert res.status == 1
    assert res.err == f"error: Failed to create pool p\nerror: cannot open directory '{vsh_env.tmp / 'none'}': " \
                      "No such file or directory\n"
    res = vsh("pool-create-as", "p", "dir", "--target", "/x", "--overwrite", "--no-overwrite")
    assert res.err == "error: Options --overwrite and --no-overwrite are mutually exclusive\n"
    res = vsh("pool-create-as", "p", "logical", "--target", "/x")
    assert res.status == 1 and res.err.startswith("error: Failed to create pool p\n")
    images = vsh_env.store / "data" / "images"
    vsh("pool-list")                # the default pool exists from here on
    res = vsh("pool-create-as", "p", "dir", "--target", str(images))
    assert res.err == "error: Failed to create pool p\nerror: operation failed: Storage source conflict with " \
                      "pool: 'default'\n"
    res = vsh("pool-create-as", "default", "dir", "--target", str(vsh_env.tmp))
    assert res.status == 1 and "is already defined with uuid" in res.err
    res = vsh("pool-create-as", "p", "dir", "--target", "/srv/p", "--print-xml")
    assert res.out == "<pool type='dir'>\n  <name>p</name>\n  <target>\n    <path>/srv/p</path>\n  </target>\n" \
                      "</pool>\n\n"
    assert vsh("pool-info", "p").status == 1


def test_pool_create_from_xml_then_define_makes_it_persistent(vsh, vsh_env, monkeypatch):
    target = vsh_env.tmp / "p2"
    target.mkdir()
    xml = vsh_env.tmp / "p2.xml"
    xml.write_text(f"<pool type='dir'><name>p2</name><target><path>{target}</path></target></pool>")
    assert vsh("pool-create", str(xml)).out == f"Pool p2 created from {xml}\n\n"
    edit_with(monkeypatch, "s/<pool type/<pool  type/")
    res = vsh("pool-edit", "p2")
    assert (res.status, res.out) == (0, "Pool p2 XML configuration edited.\n\n"), res
    info = json.loads(vsh("pool-info", "p2", "--json").out)
    assert (info["active"], info["persistent"]) == (True, True)
    vsh("pool-destroy", "p2")
    assert vsh("pool-list", "--all", "--name").out.split() == ["default", "p2"]


def test_pool_edit(vsh, vsh_env, monkeypatch):
    target = vsh_env.tmp / "p3"
    vsh("pool-define-as", "p3", "dir", "--target", str(target))
    edit_with(monkeypatch, "s/nothing-matches//")
    assert vsh("pool-edit", "p3").out == "Pool p3 XML configuration not changed.\n\n"
    edit_with(monkeypatch, f"s|{target}|{target}-moved|")
    assert vsh("pool-edit", "p3").out == "Pool p3 XML configuration edited.\n\n"
    assert json.loads(vsh("pool-info", "p3", "--json").out)["target"] == f"{target}-moved"
    edit_with(monkeypatch, "s/<target>/<target>oops/;s/<\\/pool>//")
    res = vsh("pool-edit", "p3")
    assert res.status == 1 and res.err.startswith("error: Failed.\n")
    assert json.loads(vsh("pool-info", "p3", "--json").out)["target"] == f"{target}-moved"
    monkeypatch.setenv("EDITOR", "false")
    res = vsh("pool-edit", "p3")
    assert res.status == 1 and "exited with status 1" in res.err


@pytest.fixture
def snapvm(vsh, vsh_env, define):
    disk = vsh_env.tmp / "d.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    define("vm1", devices=f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                          f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>")
    assert vsh("snapshot-create-as", "vm1", "s1", "--description", "first").status == 0
    assert vsh("snapshot-create-as", "vm1", "s2").status == 0
    return "vm1"


def test_snapshot_edit_changes_the_description(vsh, snapvm, monkeypatch):
    edit_with(monkeypatch, "s/first/second/")
    res = vsh("snapshot-edit", "vm1", "s1")
    assert (res.status, res.out, res.err) == (0, "Snapshot s1 edited.\n\n", "")
    assert "<description>second</description>" in vsh("snapshot-dumpxml", "vm1", "s1").out
    assert vsh("snapshot-current", "vm1", "--name").out.strip() == "s2"
    edit_with(monkeypatch, "s/second/third/")
    assert vsh("snapshot-edit", "vm1", "s1", "--current").status == 0
    assert vsh("snapshot-current", "vm1", "--name").out.strip() == "s1"
    edit_with(monkeypatch, "s/nothing-matches//")
    assert vsh("snapshot-edit", "vm1", "--current").out == "Snapshot s1 XML configuration not changed.\n\n"


def test_snapshot_edit_refusals(vsh, snapvm, monkeypatch):
    before = vsh("snapshot-dumpxml", "vm1", "s1").out
    edit_with(monkeypatch, "s/<name>s1</<name>s9</")
    res = vsh("snapshot-edit", "vm1", "s1")
    assert res.err == "error: Must use --rename or --clone to change s1 to s9\nerror: Failed to update s1\n"
    res = vsh("snapshot-edit", "vm1", "s1", "--rename")
    assert res.status == 1 and "cannot rename snapshot 's1' to 's9'" in res.err
    res = vsh("snapshot-edit", "vm1", "s1", "--rename", "--clone")
    assert res.err == "error: Options --rename and --clone are mutually exclusive\n"
    edit_with(monkeypatch, "s/<state>shutoff/<state>running/")
    res = vsh("snapshot-edit", "vm1", "s1")
    assert res.status == 1 and "only the description of snapshot 's1' can change" in res.err
    assert vsh("snapshot-dumpxml", "vm1", "s1").out == before
    assert vsh("snapshot-edit", "vm1").err == "error: a snapshot name or --current is required\n"
