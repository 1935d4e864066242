"""Watches a Playwright page for what the Content-Security-Policy refused and for script
errors: every `securitypolicyviolation` event (caught at document start, before any page
script) and every console error or uncaught exception."""

from __future__ import annotations

from typing import Any

REPORT = "__suvnetCspViolation"
LISTEN = (
    "document.addEventListener('securitypolicyviolation', function (e) {"
    f"  window.{REPORT}([e.effectiveDirective, e.blockedURI, e.sourceFile + ':' + e.lineNumber]"
    "    .join(' '));"
    "}, true);"
)


class CspWatch:
    """Attach before the first page load: ``CspWatch(page)``; then ``watch.assert_clean()``."""

    def __init__(self, page: Any) -> None:
        self.violations: list[str] = []
        self.errors: list[str] = []
        self.failed: list[str] = []
        """Answers of 400 and more (their console errors do not say which address)."""
        page.expose_function(REPORT, self._violation)
        page.add_init_script(LISTEN)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("response", self._response)

    def _violation(self, what: str) -> None:
        self.violations.append(what)

    def _response(self, resp: Any) -> None:
        if resp.status >= 400:
            self.failed.append(f"{resp.status} {resp.url}")

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text}")

    def assert_clean(self, where: str = "") -> None:
        assert self.violations == [], f"{where}: refused by the policy: {self.violations}"
        assert self.errors == [], f"{where}: errors: {self.errors}, failed: {self.failed}"
