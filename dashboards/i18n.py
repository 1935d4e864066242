"""The dashboards in the staff pages' languages, through the same catalogs.

Every text a person reads on a dashboard (titles, descriptions, column headers, legend
names, value mappings, variable labels, map layer names) is written in the board modules as
``N_("English text")``. ``N_`` only marks the text: it stays English (the message id) in the
:class:`~dashboards.model.Dashboard` objects, and babel extracts it into the catalogs of
:mod:`api.i18n` (``api/babel.cfg`` lists ``dashboards/``; tests/test_i18n_complete.py checks
each one is translated in every catalog). :func:`render` turns a dashboard into Grafana JSON
in one language: it builds the English JSON and replaces every marked text by its
translation, so nothing else of the JSON (queries, uids, field names) depends on the
language.

The panel SQL is the same in every language: a column is named in English snake_case in the
query (``inflow_m3h``) and its header comes from a ``displayName`` field override (see
``Panel.columns``); codes the database returns (``low pressure``, ``online``, ``high``) get
their words from value mappings. Translated text therefore never goes into SQL, so nothing
a translator writes can break or change a query, and the tests run each query once for all
languages.

Languages and their uids: the staff pages' default (``uz``) keeps the uids and folder it
always had (``suvnet-network``, folder ``suvnet``), so saved links keep working. Another
language gets its own uids (``suvnet-network-ru``) and folder (``suvnet-ru``), so several
languages can be pushed into one Grafana side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from api.i18n import CODES, DEFAULT_LANG, LANGUAGES, gettext_for
from dashboards.errors import DashboardsError

__all__ = [
    "CODES",
    "DEFAULT_LANG",
    "N_",
    "Text",
    "check_lang",
    "folder_for",
    "localize",
    "render",
    "suffix_unit",
    "uid_for",
]


class Text(str):
    """A text shown to a person, to be translated when the dashboard is rendered.

    It is a ``str`` (the English message id), so the model and the tests can use it as
    one. ``template`` wraps the translation (``"suffix: {}"`` for a unit); ``values`` fills
    the translation's ``%(name)s`` placeholders (with Grafana's ``$1`` of a regex mapping, see
    :meth:`filled`)."""

    template: str = "{}"
    values: Mapping[str, str] | None = None

    def render(self, translate: Callable[[str], str]) -> str:
        words = translate(str(self))
        if self.values is not None:
            words = words % self.values
        return self.template.format(words)

    def joined(self, after: str) -> Text:
        """This text followed by a fixed, untranslated part (e.g. a Grafana template)."""
        out = Text(self)
        out.template = self.template + after.replace("{", "{{").replace("}", "}}")
        out.values = self.values
        return out

    def filled(self, **values: str) -> Text:
        """This text with its ``%(name)s`` placeholders filled after translation, e.g. with
        Grafana's ``$1`` (a regex mapping's first group): the translator moves the
        placeholder where the language wants the number, and the catalog check
        (tests/test_i18n_complete.py) keeps it in every translation."""
        out = Text(self)
        out.template = self.template
        out.values = dict(values)
        return out


def N_(message: str) -> Text:  # noqa: N802 - babel's default keyword for a marked message
    """Mark ``message`` for translation (babel extracts ``N_("...")`` calls)."""
    return Text(message)


def suffix_unit(word: Text) -> Text:
    """A Grafana unit that writes a translated word after the number (``suffix: so'm``)."""
    unit = Text(word)
    unit.template = "suffix: {}"
    return unit


def check_lang(lang: str) -> str:
    if lang not in CODES:
        known = ", ".join(lang.code for lang in LANGUAGES)
        raise DashboardsError(f"unknown language {lang!r}: choose one of {known}")
    return lang


def _suffix(lang: str) -> str:
    return lang.lower().replace("_", "-")


def uid_for(uid: str, lang: str) -> str:
    """The uid of a dashboard in ``lang``: the same as always for the default language."""
    return uid if check_lang(lang) == DEFAULT_LANG else f"{uid}-{_suffix(lang)}"


def folder_for(lang: str) -> tuple[str, str]:
    """The Grafana folder (uid, title) of the dashboards in ``lang``."""
    if check_lang(lang) == DEFAULT_LANG:
        return "suvnet", "suvnet"
    label = next(x.label for x in LANGUAGES if x.code == lang)
    return f"suvnet-{_suffix(lang)}", f"suvnet · {label}"


def localize(doc: Any, translate: Callable[[str], str]) -> Any:
    """A copy of a JSON document with every :class:`Text` translated (plain ``str`` then)."""
    if isinstance(doc, Text):
        return doc.render(translate)
    if isinstance(doc, dict):
        return {k: localize(v, translate) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [localize(v, translate) for v in doc]
    return doc


def render(dashboard: Any, lang: str = DEFAULT_LANG) -> dict[str, Any]:
    """The Grafana JSON of a :class:`~dashboards.model.Dashboard` in ``lang``.

    The dashboard gets the language as a tag, and its links to the other dashboards list
    only those of the same language."""
    doc: dict[str, Any] = localize(dashboard.to_json(), gettext_for(check_lang(lang)).gettext)
    doc["uid"] = uid_for(dashboard.uid, lang)
    doc["tags"] = [*doc["tags"], f"lang-{_suffix(lang)}"]
    for link in doc["links"]:
        if link.get("type") == "dashboards":
            link["tags"] = [*link.get("tags", []), f"lang-{_suffix(lang)}"]
    return doc
