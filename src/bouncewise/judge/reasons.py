"""Reading a reason out of reply text: the phrase tables and the order they are tried in."""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources

# The order in which phrase tables are tried: specific causes before general ones, so that
# "550 5.7.1 Message rejected as spam by Content Filtering" is spam before it is a filter, and a
# blocklisted IP is blocked before it is a generic policy refusal.
TEXT_ORDER = (
    "virusdetected",
    "authfailure",
    "requireptr",
    "failedstarttls",
    "spamdetected",
    "badreputation",
    "norelaying",
    "expired",
    "toomanyconn",
    "speeding",
    "mailboxfull",
    "exceedlimit",
    "mesgtoobig",
    "notaccept",
    "suspend",
    "hasmoved",
    "hostunknown",
    "rejected",
    "userunknown",
    "blocked",
    "filtered",
    "securityerror",
    "notcompliantrfc",
    "contenterror",
    "syntaxerror",
    "systemfull",
    "mailererror",
    "networkerror",
    "policyviolation",
    "systemerror",
)

# Mail addresses are removed before matching: a recipient called "userunknown@..." or a domain
# called "spam.example" is no evidence of a reason.
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]{1,64}@[^\s<>()\[\]\"',;:]{1,255}")


@cache
def phrase_tables() -> dict[str, tuple[str | tuple[str, ...], ...]]:
    """Load every reason's phrase table from the package data."""
    tables = {}
    folder = resources.files("bouncewise.judge").joinpath("phrases")
    for entry in folder.iterdir():
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        phrases = tuple(
            tuple(phrase) if isinstance(phrase, list) else phrase for phrase in data.get("phrases", [])
        )
        tables[entry.name[: -len(".toml")]] = phrases
    return tables


def normalize_text(text: str, max_length: int = 4096) -> str:
    """Lower-case, remove mail addresses and collapse white space, within `max_length`."""
    text = _ADDRESS.sub(" ", text[: max_length * 2])
    return " ".join(text.lower().split())[:max_length]


def phrase_matches(text: str, phrase: str | tuple[str, ...]) -> bool:
    """Return True if a fragment, or every fragment of a tuple in order, occurs in `text`."""
    if isinstance(phrase, str):
        return phrase in text
    position = 0
    for fragment in phrase:
        position = text.find(fragment, position)
        if position < 0:
            return False
        position += len(fragment)
    return True


def reason_from_text(text: str, order: tuple[str, ...] = TEXT_ORDER) -> str:
    """Return the first reason in `order` whose table matches normalized `text`, or ""."""
    tables = phrase_tables()
    for reason in order:
        for phrase in tables.get(reason, ()):
            if phrase_matches(text, phrase):
                return reason
    return ""
