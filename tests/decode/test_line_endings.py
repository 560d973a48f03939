"""DSNs and feedback reports decode the same whatever their line endings: LF, CRLF or bare CR."""

from __future__ import annotations

from pathlib import Path

import pytest

from bouncewise import classify

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CORPUS = ROOT.parent / "shared" / "corpus"

DSN_FIXTURES = ("postfix-dsn.eml", "sendmail-dsn.eml", "sendmail-dsn-mailer.eml",
                "exchange-dsn.eml", "rfc3464-no-blank-lines.eml", "rfc3464-embedded.eml",
                "arf-abuse.eml", "arf-hotmail.eml")

FIELDS = ("recipient", "status", "reply_code", "reason", "smtp_command", "diagnostic",
          "remote_mta", "reporting_mta", "sender", "original_message_id", "subject", "timestamp",
          "decoded_by")


def summary(results) -> list[tuple]:
    return [tuple(getattr(result, name) for name in FIELDS) for result in results]


@pytest.mark.parametrize("name", DSN_FIXTURES)
@pytest.mark.parametrize("newline", [b"\r\n", b"\r"], ids=["crlf", "cr"])
def test_fixture_line_endings(name, newline):
    lf = (FIXTURES / name).read_bytes()
    converted = lf.replace(b"\n", newline)

    assert summary(classify(converted)) == summary(classify(lf))


def corpus_copies() -> list[Path]:
    copies = []
    for folder in ("bounces-crlf", "bounces-cr"):
        if (CORPUS / folder).is_dir():
            copies.extend(sorted((CORPUS / folder).glob("*.eml")))
    return copies


@pytest.mark.skipif(not corpus_copies(), reason=f"shared corpus not found at {CORPUS}: "
                           "these tests need the labelled corpus beside the clone")
def test_corpus_line_endings():
    differing = []
    for copy in corpus_copies():
        original = CORPUS / "bounces" / copy.name
        if summary(classify(copy)) != summary(classify(original)):
            differing.append(f"{copy.parent.name}/{copy.name}")

    assert differing == []
