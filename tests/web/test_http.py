"""The web console at the HTTP level, against a real `vsh web` process (no browser): Create VM's
cloud-init fields, disk resize, and `vsh web --open` handing the URL to the user's browser."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample me@host"
DOMAIN = """<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices>{devices}</devices></domain>"""


@pytest.fixture
def server(vsh_env, web_helpers):
    pytest.importorskip("aiohttp")
    srv = web_helpers.webserver.Server(dict(os.environ))
    srv.login()
    yield srv
    assert srv.stop() == 0


def post(srv, path: str, data: dict):
    resp, body = srv.request("POST", path, headers=srv.changing_headers(), body=json.dumps(data).encode())
    return resp.status, json.loads(body)


def qcow2(path, size="16M"):
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def test_create_with_cloud_init_fields_makes_the_nocloud_seed(server, vsh_env, tmp_path):
    from vsh import api
    from vsh.core.cloudinit import read_seed

    disk = qcow2(tmp_path / "root.qcow2")
    status, made = post(server, "/api/install", {"name": "seeded", "memory": "128", "disks": [f"path={disk}"],
                                                 "user": "alice", "password": "pw 1", "ssh_keys": KEY})
    assert status == 200, made
    seed = str(vsh_env.store / "data" / "images" / "seeded-cidata.iso")
    assert seed in made["created"] and made["root_password"] is None
    disks = api.connect(vsh_env.uri).lookup_domain("seeded").block_devices(inactive=True)
    assert [(d["device"], d["source"]) for d in disks] == [("disk", str(disk)), ("cdrom", seed)]
    with open(seed, "rb") as f:
        volid, files = read_seed(f.read())
    assert volid == "cidata" and sorted(files) == ["meta-data", "user-data"]
    ud = files["user-data"].decode()
    assert '  - name: "alice"\n' in ud and f'      - "{KEY}"\n' in ud and 'password: "pw 1"' in ud


def test_create_with_a_generated_password_and_refusals(server, vsh_env, tmp_path):
    from vsh.core.cloudinit import read_seed

    status, made = post(server, "/api/install", {"name": "gen", "disks": [f"path={qcow2(tmp_path / 'a.qcow2')}"],
                                                 "generate_password": True})
    assert status == 200 and len(made["root_password"]) == 16
    with open(vsh_env.store / "data" / "images" / "gen-cidata.iso", "rb") as f:
        assert f'password: "{made["root_password"]}"' in read_seed(f.read())[1]["user-data"].decode()
    for fields, message in (({"user": "Bad User", "password": "x"}, "not a valid user name"),
                            ({"ssh_keys": "not a key"}, "does not look like an SSH public key"),
                            ({"password": "x", "generate_password": True}, "not both")):
        status, answer = post(server, "/api/install", {"name": "bad", "disks": [f"path={tmp_path / 'a.qcow2'}"],
                                                       **fields})
        assert status == 400 and message in answer["error"], answer
    assert not (vsh_env.store / "data" / "images" / "bad-cidata.iso").exists()


def test_resize_a_disk_over_http(server, vsh_env, tmp_path):
    from vsh import api

    disk = qcow2(tmp_path / "d.qcow2")
    api.connect(vsh_env.uri).define_xml(DOMAIN.format(name="r1", devices=(
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>"
        f"<target dev='vdb' bus='virtio'/></disk>")))
    status, done = post(server, "/api/domains/r1/devices/disks/vdb/resize", {"size": "1"})   # GiB
    assert status == 200 and done["size"] == 1024 ** 3 and done["live"] is False, done
    resp, body = server.request("GET", "/api/domains/r1/devices")
    assert [d["capacity"] for d in json.loads(body)["disks"]] == [1024 ** 3]
    status, answer = post(server, "/api/domains/r1/devices/disks/vdz/resize", {"size": "2G"})
    assert status in (400, 404) and "vdz" in answer["error"]
    status, answer = post(server, "/api/domains/r1/devices/disks/vdb/resize", {"size": "-5"})
    assert status == 400 and "malformed" in answer["error"]


def test_the_xml_editors_check_uses_the_define_parser(server):
    assert post(server, "/api/xml/check", {"xml": "<domain><name>x</name></domain>"}) == \
        (200, {"problem": "", "root": "domain"})
    status, got = post(server, "/api/xml/check", {"xml": "<domain><name>x</broken>"})
    assert status == 200 and got["problem"].startswith("XML error: (domain_definition):1:")
    status, got = post(server, "/api/xml/check", {"xml": "<!DOCTYPE d [<!ENTITY e 'x'>]><domain/>"})
    assert "DTDs and entity declarations are not allowed" in got["problem"]


BROWSER_SCRIPT = """#!/bin/sh
# a stand-in for the user's browser: note the arguments, stay open until the test is done
printf '%s\\n' "$@" > "{out}.tmp" && mv "{out}.tmp" "{out}"
i=0
while [ ! -e "{release}" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
"""


def test_open_hands_the_url_to_the_users_browser(vsh_env, web_helpers, tmp_path):
    pytest.importorskip("aiohttp")
    out, release, script = tmp_path / "opened", tmp_path / "release", tmp_path / "browser"
    script.write_text(BROWSER_SCRIPT.format(out=out, release=release))
    script.chmod(0o755)
    srv = web_helpers.webserver.Server(dict(os.environ, BROWSER=str(script)), args=("--open",), print_url=False)
    try:
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out.read_text() == srv.url + "\n"          # the tokened URL, as the only argument
        # the browser command still runs (a browser may stay in the foreground): the server serves
        assert srv.login().status == 303
        resp, _ = srv.request("GET", "/api/domains")
        assert resp.status == 200
    finally:
        release.touch()
        assert srv.stop() == 0
    assert "warning" not in srv.stderr
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-f", str(script)], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the browser stand-in is still running"
        time.sleep(0.1)
