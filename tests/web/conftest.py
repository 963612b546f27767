"""Web tests: a `vsh web` process and a headless chromium on demand, and a screenshot of the
browser's page in the test's tmp dir when a test fails."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def load(name: str, path: Path | None = None):
    """A helper module of the web tests (they are not a package)."""
    spec = importlib.util.spec_from_file_location(name, path or HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


webserver = load("webserver")
browser_mod = load("browser")


class Helpers:
    """The helper modules, for module-scoped fixtures and tests that need them directly."""

    webserver = webserver
    browser = browser_mod
    vmguest = load("vmguest", HERE.parent / "vmguest.py")


@pytest.fixture(scope="session")
def web_helpers():
    return Helpers


@pytest.fixture
def open_web(request, vsh_env, tmp_path):
    """``open_web()`` → (server, browser) on the test's store, both stopped after the test."""
    pytest.importorskip("aiohttp")
    why = browser_mod.available()
    if why:
        pytest.skip(why)
    made = []

    def start(env: dict | None = None):
        srv = webserver.Server(env or dict(os.environ))
        made.append(srv)
        br = browser_mod.Browser()
        made.append(br)
        request.node.vsh_browser = br
        request.node.vsh_tmp = tmp_path
        return srv, br

    yield start
    violations = [line for br in made if not isinstance(br, webserver.Server) for line in br.csp_violations()]
    for thing in reversed(made):
        if isinstance(thing, webserver.Server):
            assert thing.stop() == 0
        else:
            thing.close()
    assert not violations, "the page broke its Content-Security-Policy:\n" + "\n".join(violations)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        browser = getattr(item, "vsh_browser", None)
        tmp = getattr(item, "vsh_tmp", None)
        if browser is not None and tmp is not None:
            path = tmp / f"failure-{item.name.replace('/', '_')}.png"
            browser.screenshot(path)
            report.sections.append(("browser", f"screenshot: {path}\nconsole:\n" + "\n".join(browser.console)))
