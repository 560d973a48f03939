"""Reading a reason out of reply text: the phrase tables and the order they are tried in."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from bouncewise.config import DEFAULT_LIMITS

# The order in which phrase tables are tried: specific causes before general ones, so that
# "550 5.7.1 Message rejected as spam by Content Filtering" is spam before it is a filter, and a
# blocklisted IP is blocked before it is a generic policy refusal.
TEXT_ORDER = (
    "virusdetected",
    "notcompliantrfc",
    "spamdetected",
    "authfailure",
    "requireptr",
    "failedstarttls",
    "badreputation",
    "norelaying",
    "toomanyconn",
    "speeding",
    "mailboxfull",
    "mesgtoobig",
    "exceedlimit",
    "notaccept",
    "suspend",
    "hasmoved",
    "blocked",
    "rejected",
    "hostunknown",
    "userunknown",
    "filtered",
    "securityerror",
    "contenterror",
    "syntaxerror",
    "systemfull",
    "mailererror",
    "networkerror",
    "policyviolation",
    "systemerror",
    # Last, because a bounce about a sender that gave up usually also names why it kept failing.
    "expired",
)

# Mail addresses and the paths of URLs are removed before matching: a recipient called
# "userunknown@..." or a help page under /spam/ is no evidence of a reason. A URL's host name
# stays, because a link to a blocklist's lookup page names the list.
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]{1,64}@[^\s<>()\[\]\"',;:]{1,255}")
_URL = re.compile(r"https?://([^\s<>\"'/?#]{1,255})[^\s<>\"']{0,2000}")


Phrase = str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PhraseTable:
    """One reason's phrases in three strengths, tried in this order across all tables.

    Definite phrases state the cause beyond doubt. Weak phrases count only when no specific
    phrase of any table matched.
    """

    definite_phrases: tuple[Phrase, ...]
    phrases: tuple[Phrase, ...]
    weak_phrases: tuple[Phrase, ...]


@cache
def phrase_tables() -> dict[str, PhraseTable]:
    """Load every reason's phrase table from the package data."""
    tables = {}
    folder = resources.files("bouncewise.judge").joinpath("phrases")
    for entry in folder.iterdir():
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        tables[entry.name[: -len(".toml")]] = PhraseTable(
            definite_phrases=_phrases(data.get("definite_phrases", [])),
            phrases=_phrases(data.get("phrases", [])),
            weak_phrases=_phrases(data.get("weak_phrases", [])),
        )
    return tables


def _phrases(entries: list) -> tuple[Phrase, ...]:
    return tuple(tuple(entry) if isinstance(entry, list) else entry for entry in entries)


# Reply codes and the enhanced codes after them, which multi-line replies repeat on every line
# ("550-5.7.1 Messages with multiple 550-5.7.1 addresses in From"), so phrases can span lines.
_REPLY_PREFIX = re.compile(r"(?<![\w.#-])[245]\d\d[ -](?:#?[245]\.\d{1,3}\.\d{1,3}\s)?")


def normalize_text(text: str, max_length: int = DEFAULT_LIMITS.max_phrase_text) -> str:
    """Lower-case, remove mail addresses, URL paths and reply codes, and collapse white space.

    Reads at most twice `max_length` characters of `text` and returns at most `max_length`.
    """
    text = _URL.sub(r" \1 ", text[: max_length * 2])
    text = _ADDRESS.sub(" ", text)
    text = _REPLY_PREFIX.sub(" ", text)
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


@dataclass(frozen=True, slots=True)
class ProviderCodes:
    """A provider's reply-code pattern and the reason each code stands for."""

    name: str
    pattern: re.Pattern[str]
    codes: dict[str, str]


@cache
def provider_codes() -> tuple[ProviderCodes, ...]:
    """Load the providers' reply-code tables from the package data."""
    data = tomllib.loads(
        resources.files("bouncewise.judge").joinpath("providers.toml").read_text(encoding="utf-8"))
    return tuple(
        ProviderCodes(entry["name"], re.compile(entry["pattern"]), dict(entry["codes"]))
        for entry in data["providers"]
    )


def reason_from_provider_code(text: str) -> str:
    """Return the reason named by a provider's reply code in normalized `text`, or ""."""
    for provider in provider_codes():
        for match in provider.pattern.finditer(text):
            reason = provider.codes.get(match.group(1))
            if reason:
                return reason
    return ""


# Strengths of a phrase match, strongest first.
DEFINITE = "definite"
SPECIFIC = "specific"
WEAK = "weak"


@dataclass(frozen=True, slots=True)
class _Matcher:
    """One table's phrases of one strength, prepared for matching.

    The plain fragments are joined into one alternation of escaped literals, so one call of the
    regular expression engine tries them all. Ordered tuples stay separate. An alternation of
    literals cannot backtrack catastrophically, and the text is bounded by `max_phrase_text`.
    """

    literals: re.Pattern[str] | None
    sequences: tuple[tuple[str, ...], ...]

    def matches(self, text: str) -> bool:
        if self.literals is not None and self.literals.search(text):
            return True
        return any(phrase_matches(text, sequence) for sequence in self.sequences)


def _matcher(phrases: tuple[Phrase, ...]) -> _Matcher:
    literals = [phrase for phrase in phrases if isinstance(phrase, str)]
    pattern = re.compile("|".join(re.escape(literal) for literal in literals)) if literals else None
    return _Matcher(pattern, tuple(phrase for phrase in phrases if not isinstance(phrase, str)))


@cache
def _matchers(order: tuple[str, ...]) -> tuple[tuple[str, str, _Matcher], ...]:
    """Return (strength, reason, matcher) in the order they are tried."""
    tables = phrase_tables()
    prepared = []
    for strength, field_name in ((DEFINITE, "definite_phrases"), (SPECIFIC, "phrases"),
                                 (WEAK, "weak_phrases")):
        for reason in order:
            table = tables.get(reason)
            phrases = getattr(table, field_name) if table is not None else ()
            if phrases:
                prepared.append((strength, reason, _matcher(phrases)))
    return tuple(prepared)


def reason_from_text(text: str, order: tuple[str, ...] = TEXT_ORDER) -> tuple[str, str]:
    """Return the reason whose table matches normalized `text` and the strength of the match,
    or ("", "").

    Definite phrases of every table are tried first, in `order`, then specific ones, then weak
    ones (such as a bare "blocked" or "policy").
    """
    for strength, reason, matcher in _matchers(order):
        if matcher.matches(text):
            return reason, strength
    return "", ""
