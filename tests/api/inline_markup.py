"""Finds markup that runs or styles inline, which the pages' Content-Security-Policy refuses:
<script> without src, on*= event-handler attributes, javascript: addresses, <style> blocks and
style attributes. Used on the templates (Jinja tags blanked out first), on the HTML strings of
the Python code and on rendered pages."""

from __future__ import annotations

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_JS_URL = re.compile(r"javascript\s*:", re.IGNORECASE)
_TAG = re.compile(r"<[a-zA-Z!/]")


class _Finder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        where = f"line {self.getpos()[0]} <{tag}>"
        if tag == "script" and "src" not in names:
            self.found.append(f"{where}: inline script")
        if tag == "style":
            self.found.append(f"{where}: style block")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{where}: event handler {name}=")
            if name == "style":
                self.found.append(f"{where}: style attribute")
            if value and _JS_URL.match(value.strip()):
                self.found.append(f"{where}: javascript: address in {name}=")

    handle_startendtag = handle_starttag


def inline_code(html: str) -> list[str]:
    """What in ``html`` would run or style inline (empty when nothing would)."""
    finder = _Finder()
    finder.feed(html)
    finder.close()
    found = finder.found
    if _JS_URL.search(html) and not any("javascript:" in f for f in found):
        found.append("javascript: in the text")
    return found


def in_template(text: str) -> list[str]:
    """``inline_code`` of a Jinja template: every {{ }}, {% %} and {# #} is blanked out first
    (keeping the line numbers), so markup inside {% if %} branches is checked too."""
    return inline_code(_JINJA.sub(lambda m: "x" + "\n" * m.group().count("\n"), text))


def html_strings(path: Path) -> list[tuple[int, str]]:
    """The string literals (and f-strings, with their fields blanked) of a Python file that
    contain markup, with their line numbers; docstrings are not page text and are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {  # a string standing alone as a statement (docstrings) is never output
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    inside_fstring: set[int] = set()
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                inside_fstring.add(id(v))
                parts.append(v.value if isinstance(v, ast.Constant) else "x")
            text = "".join(str(p) for p in parts)
            if _TAG.search(text):
                out.append((node.lineno, text))
    out.extend(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and id(node) not in inside_fstring
        and _TAG.search(node.value)
    )
    return out
