"""Web tests: keep a screenshot of the browser's page in the test's tmp dir when a test fails."""

from __future__ import annotations

import pytest


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
