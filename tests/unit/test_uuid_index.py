"""The store's UUID index (vsh.core.uuidindex): consistent with the configs after define,
undefine and rename, never believed when stale (a killed writer, a config changed behind vsh's
back), rebuilt from the configs then. Real stores on disk; the crashes are real processes
killed with SIGKILL at a chosen step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid as uuidlib

import pytest


@pytest.fixture
def store(vsh_env):
    from vsh.core.store import Store

    return Store.open(vsh_env.uri)


def links(store) -> dict:
    """uuid → name, as the index's links say."""
    path = store.uuid_index.links
    if not os.path.isdir(path):
        return {}
    return {entry: os.readlink(os.path.join(path, entry)) for entry in os.listdir(path)
            if not entry.startswith(".")}


def configs(store) -> dict:
    """uuid → name, as the configs say."""
    return {store.config_uuid(name): name for name in store.persistent_names()}


def new_uuid() -> str:
    return str(uuidlib.uuid4())


@pytest.fixture
def dom(make_xml):
    from vsh.core.domain import Domain

    return lambda name, uid=None: Domain.parse(make_xml(name, uuid=uid or new_uuid()))


def test_define_undefine_rename_keep_links_equal_to_configs(store, dom):
    for i in range(5):
        store.define(dom(f"vm{i}"))
    assert links(store) == configs(store) and len(configs(store)) == 5
    assert store.uuid_index.fresh()
    store.undefine(store.get("vm2"))
    assert links(store) == configs(store) and len(configs(store)) == 4
    store.set_autostart("vm3", True)
    held = store.config_uuid("vm3")
    store.rename(store.get("vm3"), "renamed")
    assert links(store) == configs(store) and links(store)[held] == "renamed"
    assert store.autostart("renamed") and not store.autostart("vm3")
    assert store.find(held.upper()).name == "renamed"
    assert not os.path.exists(os.path.join(store.uuid_index.root, ".busy"))


def test_duplicate_uuid_refused_with_libvirts_words(store, dom):
    from vsh.core.errors import XMLError

    u = new_uuid()
    store.define(dom("a", u))
    with pytest.raises(XMLError, match=f"domain 'a' is already defined with uuid {u}"):
        store.define(dom("b", u.upper()))
    with pytest.raises(XMLError, match="domain 'a' already exists with uuid"):
        store.define(dom("a"))
    assert store.define(dom("a", u)) is False      # the same again: an update
    assert configs(store) == {u: "a"} and links(store) == {u: "a"}


def test_a_stale_link_answers_nothing(store, dom):
    """A link whose config holds another UUID now (a define killed before its config was
    written, then the name defined again) is checked and ignored."""
    u = new_uuid()
    store.define(dom("a"))
    os.symlink("a", os.path.join(store.uuid_index.links, u))
    assert store.uuid_index.owner(u) is None and store.find(u) is None
    assert store.define(dom("b", u)) is True
    assert store.find(u).name == "b" and links(store)[u] == "b"


@pytest.mark.parametrize("change", ["copy", "remove", "busy", "no-stamp", "links-gone"])
def test_a_stale_index_is_rebuilt(store, dom, vsh_env, change):
    """Behind vsh's back (a config copied in or removed by hand, a writer killed at work, no
    stamp, no links), a miss is not believed: the index is rebuilt from the configs."""
    import shutil

    for i in range(3):
        store.define(dom(f"vm{i}"))
    index = store.uuid_index
    u = new_uuid()
    if change == "copy":
        (vsh_env.domains / "hand.xml").write_text(
            (vsh_env.domains / "vm0.xml").read_text().replace("vm0", "hand")
            .replace(store.config_uuid("vm0"), u))
    elif change == "remove":
        u = store.config_uuid("vm1")
        os.unlink(vsh_env.domains / "vm1.xml")
    elif change == "busy":
        open(os.path.join(index.root, ".busy"), "w").close()
    elif change == "no-stamp":
        os.unlink(os.path.join(index.root, ".stamp"))
    else:
        shutil.rmtree(index.links)
    assert not index.fresh()
    from vsh.core.store import Store

    fresh_store = Store.open(vsh_env.uri)
    owner = fresh_store.uuid_index.owner(u)
    assert owner == ("hand" if change == "copy" else None)
    assert fresh_store.uuid_index.fresh()
    assert links(fresh_store) == configs(fresh_store)


def test_rebuild_keeps_the_first_of_two_configs_with_one_uuid(store, dom, vsh_env):
    u = new_uuid()
    store.define(dom("b", u))
    text = (vsh_env.domains / "b.xml").read_text()
    (vsh_env.domains / "a.xml").write_text(text.replace("<name>b</name>", "<name>a</name>"))
    assert store.uuid_index.owner(u) == "a"
    from vsh.core.errors import XMLError

    with pytest.raises(XMLError, match="domain 'a' is already defined"):
        store.define(dom("c", u))


def test_a_failed_write_leaves_the_index_trusted(store, dom, monkeypatch):
    """An error (disk full) while writing a config: the index stays as it was, and true."""
    store.define(dom("a"))
    stamp = open(os.path.join(store.uuid_index.root, ".stamp")).read()

    def full(*_args, **_kw):
        raise OSError(28, "No space left on device")

    d = store.load(store.get("a"), inactive=True)
    d.description = "changed"
    monkeypatch.setattr(os, "rename", full)
    with pytest.raises(OSError):
        store.write_config(d)
    monkeypatch.undo()
    assert open(os.path.join(store.uuid_index.root, ".stamp")).read() == stamp
    assert not os.path.exists(os.path.join(store.uuid_index.root, ".busy"))
    assert links(store) == configs(store)


# -- writers killed at a chosen step ---------------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, signal, sys
    from vsh.core import uuidindex
    from vsh.core.domain import Domain
    from vsh.core.store import Store

    uri, step, action, name, arg = sys.argv[1:6]
    store = Store.open(uri)

    def die(*_a, **_kw):
        os.kill(os.getpid(), signal.SIGKILL)

    if step == "link":                          # after the link, before the config
        real = uuidindex.UuidIndex.link
        def link(self, *a):
            real(self, *a)
            die()
        uuidindex.UuidIndex.link = link
    elif step == "stamp":                       # after every change, before the stamp
        uuidindex.UuidIndex._write_stamp = die
    elif step == "old-config":                  # a rename: the new config written, the old one still there
        uuidindex.UuidIndex.finish_rename = die
    if action == "define":
        store.define(Domain.parse(open(arg).read()))
    elif action == "undefine":
        store.undefine(store.get(name))
    else:
        store.rename(store.get(name), arg)
""")


def killed(vsh_env, step: str, action: str, name: str, arg: str = "-") -> None:
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    proc = subprocess.run([sys.executable, "-c", CHILD, vsh_env.uri, step, action, name, arg],
                          env=dict(os.environ, PYTHONPATH=os.path.abspath(root)), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


@pytest.mark.parametrize("step", ["link", "stamp"])
def test_define_killed_leaves_no_lie(store, dom, make_xml, vsh_env, step):
    from vsh.core.errors import XMLError

    store.define(dom("old"))
    u = new_uuid()
    xml = vsh_env.tmp / "new.xml"
    xml.write_text(make_xml("new", uuid=u))
    killed(vsh_env, step, "define", "new", str(xml))
    assert os.path.exists(os.path.join(store.uuid_index.root, ".busy"))
    if step == "link":      # the config never came: the UUID is free (the link is stale)
        assert store.uuid_index.owner(u) is None
        store.define(dom("other", u))
        assert store.find(u).name == "other"
    else:                   # the config is there: its UUID is taken
        assert store.uuid_index.owner(u) == "new"
        with pytest.raises(XMLError, match=f"domain 'new' is already defined with uuid {u}"):
            store.define(dom("other", u))
    assert links(store) == configs(store)


def test_undefine_killed_before_the_stamp(store, dom, vsh_env):
    u = new_uuid()
    store.define(dom("gone", u))
    killed(vsh_env, "stamp", "undefine", "gone")
    assert store.uuid_index.owner(u) is None
    store.define(dom("again", u))
    assert links(store) == configs(store) == {u: "again"}


@pytest.mark.parametrize("step", ["old-config", "stamp"])
def test_rename_killed_is_finished(store, dom, vsh_env, step):
    """A rename killed with both configs on disk is finished by the next user: one domain, its
    UUID linked to the new name, autostart moved."""
    u = new_uuid()
    store.define(dom("before", u))
    store.set_autostart("before", True)
    killed(vsh_env, step, "rename", "before", "after")
    assert store.find(u).name == "after"
    assert sorted(store.persistent_names()) == ["after"]
    assert store.autostart("after") and not store.autostart("before")
    assert links(store) == configs(store) == {u: "after"}
    assert not os.path.exists(os.path.join(store.uuid_index.root, "renaming"))


def test_threads_sharing_one_store(store, dom):
    """The web console's pool shares one Store: defines from several threads at once, two of
    them with one UUID, leave the index equal to the configs and one UUID with one domain."""
    import threading

    from vsh.core.errors import XMLError

    u = new_uuid()
    errors, done = [], []

    def work(i):
        try:
            store.define(dom(f"t{i}", u if i < 2 else None))
            done.append(i)
        except XMLError as err:
            errors.append(str(err))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(errors) == 1 and "is already defined with uuid" in errors[0], errors
    assert len(done) == 7
    assert links(store) == configs(store) and len(configs(store)) == 7
    assert store.uuid_index.fresh()


def test_a_legacy_malformed_uuid_is_indexed_too(store, dom, vsh_env):
    """A config written before define checked UUIDs may hold anything there (long, with '/'):
    the rebuild still links it."""
    weird = "not/a-uuid " + "z" * 300
    store.define(dom("old"))
    text = (vsh_env.domains / "old.xml").read_text()
    (vsh_env.tmp / "old.xml").write_text(text.replace(store.config_uuid("old"), weird))
    os.replace(vsh_env.tmp / "old.xml", vsh_env.domains / "old.xml")     # as an editor saves it
    assert store.uuid_index.owner(weird) == "old"
    assert links(store) and list(links(store).values()) == ["old"]
