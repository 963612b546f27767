"""vsh migrate's checks that need no running guest: option rules, destinations, offline moves,
and the migration tunables refused on a domain that does not run."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("words, message", [
    (["--timeout-suspend", "--live"], "Option --timeout-suspend requires --timeout"),
    (["--timeout", "5"], "Unexpected timeout for offline migration"),
    (["--tunnelled"], "Option --tunnelled requires --p2p"),
    (["--live", "--offline", "--persistent"], "--live and --offline are mutually exclusive"),
    (["--offline"], "offline migration requires --persistent"),
    (["--offline", "--persistent", "--copy-storage-all"], "offline migration cannot handle non-shared storage"),
    (["--offline", "--persistent", "--xml", "/nonexistent.xml"], "/nonexistent.xml"),
    (["--dname", "other"], "keeps the domain's name"),
])
def test_option_rules(vsh, define, tmp_path, words, message):
    define("vm1")
    res = vsh("migrate", *words, "vm1", f"vsh:///session?root={tmp_path / 'b'}")
    assert res.status == 1 and res.err.startswith("error: ") and message in res.err, res


def test_destinations(vsh, define, vsh_env):
    define("vm1")
    res = vsh("migrate", "--offline", "--persistent", "vm1", vsh_env.uri)
    assert res.status == 1 and "the destination is the source's own store" in res.err
    res = vsh("migrate", "--live", "vm1", "vsh:///session?root=relative")
    assert res.status == 1 and "must be an absolute path" in res.err
    res = vsh("migrate", "--live", "vm1", "vsh+tls://host/system")
    assert res.status == 1 and res.err.startswith("error: ")
    res = vsh("migrate", "--live", "vm1", f"vsh:///session?root={vsh_env.tmp / 'b'}")
    assert res.status == 1 and "domain is not running" in res.err


def test_offline_migration_and_undefinesource(vsh, define, vsh_env):
    define("vm1")
    dest = f"vsh:///session?root={vsh_env.tmp / 'b'}"
    uuid = vsh("domuuid", "vm1").out
    res = vsh("migrate", "--offline", "--persistent", "vm1", dest)
    assert res.status == 0, res
    assert vsh("-c", dest, "domuuid", "vm1").out == uuid
    assert vsh("domstate", "vm1").out.strip() == "shut off"          # still here without --undefinesource
    res = vsh("migrate", "--offline", "--persistent", "--undefinesource", "vm1", dest, "--json")
    assert res.status == 0, res
    assert vsh("list", "--all", "--name").out.strip() == ""
    assert vsh("-c", dest, "list", "--all", "--name").out.strip() == "vm1"


@pytest.mark.parametrize("words", [["migrate-getmaxdowntime", "vm1"], ["migrate-setspeed", "vm1", "--bandwidth", "5"],
                                   ["migrate-getspeed", "vm1"], ["migrate-compcache", "vm1"],
                                   ["migrate-postcopy", "vm1"], ["migrate-setmaxdowntime", "vm1", "--downtime", "30"]])
def test_tunables_need_a_running_domain(vsh, define, words):
    define("vm1")
    res = vsh(*words)
    assert res.status == 1 and "domain is not running" in res.err, res


def test_tunable_values_are_checked(vsh, define):
    define("vm1")
    assert "Invalid downtime" in vsh("migrate-setmaxdowntime", "vm1", "--downtime", "0").err
    assert "Numeric value '-1' for <bandwidth> option is malformed" in vsh("migrate-setspeed", "vm1", "--bandwidth",
                                                                          "-1").err
