"""What the branches' refusals tell people, in their language (docs/branches.md).

Billing refuses a document of a branch that lacks a required requisite
(:class:`billing.branches.RequisitesMissingError`, which names the missing ones by column);
the API says so in the language of the page or document asked for. (The staff login page
says why a login that belongs to no branch is refused: api/templates/staff_login.html.)
"""

from __future__ import annotations

from api.errors import ConflictError
from api.reports.text import Words, pgettext
from billing.branches import RequisitesMissingError

REQUISITES_MISSING = pgettext(
    "branch",
    "The documents of branch %(branch)s cannot be made: it has no %(missing)s. An "
    "administrator sets them with: suvnet branches set %(code)s",
)
FIELDS = {
    "legal_name": pgettext("branch", "legal name"),
    "inn": pgettext("branch", "STIR"),
    "bank_account": pgettext("branch", "bank account"),
    "mfo": pgettext("branch", "MFO"),
}


class BranchRequisitesError(ConflictError):
    """409: the branch's documents cannot be made until its requisites are set."""

    code = "branch_requisites"


def requisites_text(exc: RequisitesMissingError, lang: str) -> str:
    """The refusal of a document of a branch without its requisites, in ``lang``."""
    words = Words(lang)
    return words(
        REQUISITES_MISSING,
        branch=f"{exc.branch_code} ({exc.branch_name})",
        missing=", ".join(words(FIELDS[c]) if c in FIELDS else c for c in exc.missing),
        code=exc.branch_code,
    )


def requisites_refusal(exc: RequisitesMissingError, lang: str) -> BranchRequisitesError:
    return BranchRequisitesError(requisites_text(exc, lang))
