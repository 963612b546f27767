"""cloud-init's account fields (the installer's ``cloud_account`` option, the web console's Create
VM form): the user-data they make and the values they refuse."""

from __future__ import annotations

import pytest

from vsh.core.cloudinit import parse_cloud_init
from vsh.core.errors import InvalidArgument

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample me@host"
UUID = "6f1f3c1e-4a8b-4b0e-9b51-2f7c8d9e0a11"


def test_a_new_account_with_key_and_password():
    cloud = parse_cloud_init(None, "vm1", UUID, {"user": "alice", "password": 'pa"ss\\word', "ssh_keys": KEY + "\n"})
    assert cloud.password is None                       # typed, not generated: nothing to report
    assert cloud.files["user-data"].decode() == (
        "#cloud-config\n"
        "users:\n"
        "  - default\n"
        '  - name: "alice"\n'
        "    shell: /bin/bash\n"
        '    sudo: "ALL=(ALL) NOPASSWD:ALL"\n'
        "    lock_passwd: false\n"
        "    ssh_authorized_keys:\n"
        f'      - "{KEY}"\n'
        "chpasswd:\n"
        "  expire: false\n"
        "  users:\n"
        '    - name: "alice"\n'
        '      password: "pa\\"ss\\\\word"\n'
        "      type: text\n")
    assert cloud.files["meta-data"] == f"instance-id: vsh-{UUID}\nlocal-hostname: vm1\n".encode()


def test_root_by_default_and_a_generated_password_expires():
    cloud = parse_cloud_init("root-password-generate=on", "vm1", UUID, {"ssh_keys": KEY})
    ud = cloud.files["user-data"].decode()
    assert "  - name: root\n" in ud and f'      - "{KEY}"\n' in ud
    assert f'password: "{cloud.password}"' in ud and "  expire: true\n" in ud


@pytest.mark.parametrize("text, account, message", [
    (None, {"user": "Bad User", "password": "x"}, "not a valid user name"),
    (None, {"user": "bob", "password": "a\nb"}, "control character"),
    ("root-password-generate=on", {"password": "x"}, "not both"),
    (None, {"user": "bob"}, "give the account 'bob' a password or an ssh key"),
    (None, {"ssh_keys": "-----BEGIN OPENSSH PRIVATE KEY-----"}, "is a private key"),
])
def test_refused(text, account, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_cloud_init(text, "vm1", UUID, account)


def test_nothing_asked_is_no_seed():
    assert parse_cloud_init(None, "vm1", UUID, None) is None
    assert parse_cloud_init(None, "vm1", UUID, {}) is None
