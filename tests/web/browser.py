"""Debian's chromium driven headless by Playwright for Python (never `playwright install`)."""

from __future__ import annotations

import os
import shutil

CHROMIUM = "/usr/bin/chromium"


def available() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install '.[test]')"
    if not shutil.which(CHROMIUM):
        return f"{CHROMIUM} is missing (scripts/setup installs Debian's chromium)"
    return None


# what chromium's own console message leaves out: the element and the script that broke the policy
REPORT_VIOLATIONS = """document.addEventListener("securitypolicyviolation", (e) => console.error(
    "Content Security Policy violation:", e.violatedDirective, JSON.stringify(e.sample),
    e.target && e.target.outerHTML ? e.target.outerHTML.slice(0, 200) : String(e.target),
    e.sourceFile + ":" + e.lineNumber + ":" + e.columnNumber));"""


class Browser:
    """One headless chromium and one page; close() leaves no process behind."""

    def __init__(self):
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        self.context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.add_init_script(REPORT_VIOLATIONS)
        self.console: list[str] = []
        self.dialogs: list[str] = []
        self.page = self.new_page()

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        if dialog.type == "confirm":
            dialog.accept()
        else:
            dialog.dismiss()

    def new_page(self):
        page = self.context.new_page()
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))
        page.on("dialog", self._dialog)
        return page

    def csp_violations(self, since: int = 0) -> list[str]:
        """The console's Content-Security-Policy reports (chromium logs every blocked inline style
        or script as an error naming the policy), from message number ``since`` on."""
        return [line for line in self.console[since:] if "Content Security Policy" in line]

    def screenshot(self, path) -> None:
        try:
            self.page.screenshot(path=str(path), full_page=True)
        except Exception as exc:  # the browser may be what failed
            self.console.append(f"screenshot failed: {exc}")

    def close(self) -> None:
        try:
            self.context.close()
            self.browser.close()
        finally:
            self._pw.stop()
