"""Hostile input: every case either classifies what it can or raises `UnreadableInput`, quickly.

Large inputs are generated here at test time; none is stored in the repository. The time bound
is about a second per megabyte plus a fixed allowance for a slow machine.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import postfix_dsn, run_cli

from bouncewise import UnreadableInput, classify
from bouncewise.config import DEFAULT_LIMITS, Limits
from bouncewise.decode.text import _first_mentions
from bouncewise.mail.headers import parse_header_block

MEGABYTE = 1_000_000

BOUNCE_HEAD = b"From: MAILER-DAEMON@mail.example.com\nSubject: Undelivered Mail Returned to Sender\n"


def _seconds_allowed(data: bytes) -> float:
    return 2.0 + 1.0 * len(data) / MEGABYTE


def _classify_in_time(data: bytes):
    """Classify `data`; return the results, or the `UnreadableInput` it raised."""
    started = time.perf_counter()
    try:
        outcome = classify(data)
    except UnreadableInput as error:
        outcome = error
    elapsed = time.perf_counter() - started
    assert elapsed < _seconds_allowed(data), f"took {elapsed:.1f}s for {len(data)} bytes"
    return outcome


def _nested_multipart(depth: int) -> bytes:
    opening = b"".join(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (level, level + 1)
                       for level in range(depth))
    return BOUNCE_HEAD + b"Content-Type: multipart/mixed; boundary=b0\n\n" + opening


def _many_recipients_text(count: int) -> bytes:
    lines = b"".join(b"<user%d@example.org>:\n550 5.1.1 no such user\n\n" % index
                     for index in range(count))
    return b"From: MAILER-DAEMON@mail.example.net\nSubject: failure notice\n\n" + lines


def _many_recipients_dsn(count: int) -> bytes:
    groups = b"".join(b"Final-Recipient: rfc822; user%d@example.org\nAction: failed\nStatus: 5.1.1\n\n"
                      % index for index in range(count))
    dsn = postfix_dsn()
    return dsn.replace(b"Final-Recipient: rfc822; j.doe@example.org\n", groups + b"Final-Recipient: rfc822; j.doe@example.org\n")


CASES = {
    "binary": bytes(range(256)) * 400,
    "nul bytes": b"\0" * 100_000,
    "truncated dsn": postfix_dsn()[:400],
    "dsn cut inside status part": postfix_dsn()[: postfix_dsn().index(b"Status:") + 3],
    "nested multipart 5000": _nested_multipart(5000),
    "same boundary nested 5000": BOUNCE_HEAD + b"Content-Type: multipart/mixed; boundary=a\n\n"
    + b"--a\nContent-Type: multipart/mixed; boundary=a\n\n" * 5000,
    "nested rfc822 3000": b"Content-Type: message/rfc822\n\n" * 3000 + b"Subject: x\n\nhi\n",
    "100000 parts": BOUNCE_HEAD + b"Content-Type: multipart/mixed; boundary=a\n\n"
    + b"--a\n\n<u@example.org> 550 5.1.1 unknown\n" * 100_000,
    "unclosed boundary": postfix_dsn().replace(b"--B0UND.1715670764/mail.example.com--", b""),
    "missing boundary parameter": postfix_dsn().replace(b'boundary="B0UND', b'xboundary="B0UND'),
    "unknown charset": postfix_dsn().replace(b"charset=us-ascii", b"charset=x-unknown-9"),
    "codec that is no charset": postfix_dsn().replace(b"charset=us-ascii", b"charset=zlib"),
    "broken base64 status": postfix_dsn().replace(
        b"Content-Type: message/delivery-status\n",
        b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n"),
    "nul inside dsn": postfix_dsn().replace(b"User unknown", b"User\0unknown"),
    "header line 5 MB": b"Subject: " + b"a" * 5 * MEGABYTE + b"\n" + BOUNCE_HEAD + b"\nbody\n",
    "folded header 2 million lines": b"Subject: x\n" + b" a\n" * 2_000_000 + BOUNCE_HEAD + b"\nbody\n",
    "body line 30 MB": BOUNCE_HEAD + b"\n" + b"x" * 30 * MEGABYTE + b"\n",
    "html full of brackets": BOUNCE_HEAD + b"Content-Type: text/html\n\n" + b"<" * 2 * MEGABYTE,
    "base64 junk 8 MB": BOUNCE_HEAD + b"Content-Transfer-Encoding: base64\n\n" + b"!@#$%" * 1_600_000,
    "quoted-printable soft breaks": BOUNCE_HEAD + b"Content-Transfer-Encoding: quoted-printable\n\n"
    + b"=\n" * 2 * MEGABYTE,
    "100000 encoded words": b"Subject: " + b"=?utf-8?q?a?= " * 100_000 + b"\n" + BOUNCE_HEAD + b"\nx\n",
    "bare at signs": BOUNCE_HEAD + b"\n" + b"@" * MEGABYTE + b"\n",
    "angle brackets": BOUNCE_HEAD + b"\n" + b"<a" * MEGABYTE + b"\n",
    "status digits": BOUNCE_HEAD + b"\n" + b"5.5.5." * 300_000 + b"\n",
    "reply code runs": BOUNCE_HEAD + b"\n" + b" 550" * 300_000 + b"\n",
    "text bounce 3000 recipients": _many_recipients_text(3000),
    "x-failed-recipients 20000": b"X-Failed-Recipients: " + b", ".join(
        b"user%d@example.org" % index for index in range(20_000)) + b"\n" + BOUNCE_HEAD + b"\nfailed\n",
    "dsn 3000 recipients, short notice": _many_recipients_dsn(3000),
}


@pytest.mark.parametrize("name", CASES)
def test_hostile_input_bounded(name):
    outcome = _classify_in_time(CASES[name])
    assert isinstance(outcome, (list, UnreadableInput))


def test_empty_input_unreadable():
    with pytest.raises(UnreadableInput, match="empty input"):
        classify(b"")


def test_binary_input_unreadable():
    with pytest.raises(UnreadableInput, match="not a mail message"):
        classify(bytes(range(256)) * 10)


def test_truncated_dsn_still_names_recipient():
    results = classify(postfix_dsn()[: postfix_dsn().index(b"Remote-MTA")])
    assert [result.recipient for result in results] == ["j.doe@example.org"]


def test_header_line_does_not_hide_bounce():
    data = b"X-Junk: " + b"j" * 3 * MEGABYTE + b"\n" + postfix_dsn()
    assert [result.reason for result in classify(data)] == ["userunknown"]


def test_recipient_limit_applies():
    results = classify(_many_recipients_text(3000))
    assert 0 < len(results) <= 10_000


def test_dsn_listing_thousands_in_notice():
    data = _many_recipients_dsn(5000).replace(
        b"This is the mail system",
        b"".join(b"<user%d@example.org>: 550 5.1.1 no such user\n" % index for index in range(5000))
        + b"This is the mail system")
    outcome = _classify_in_time(data)
    assert isinstance(outcome, list)


def _text_bounce_listing(count: int) -> bytes:
    """Build a plain-text bounce with one line per failed recipient, about 45 bytes a line."""
    lines = b"".join(b"<user%05d@example.org>: 550 5.1.1 No such user\n" % index
                     for index in range(count))
    return (b"From: Mail Delivery System <MAILER-DAEMON@mail.example.net>\n"
            b"To: sender@example.com\nSubject: Undelivered Mail\n\n"
            b"The following recipients could not be reached:\n\n" + lines)


def test_text_bounce_past_scan_limit_keeps_recipients():
    # 10,000 lines of 45 bytes exceed max_scan_text (256 KiB); every recipient must come out.
    data = _text_bounce_listing(10_000)
    assert len(data) > DEFAULT_LIMITS.max_scan_text

    results = _classify_in_time(data)

    assert len(results) == 10_000
    assert results[-1].recipient == "user09999@example.org"
    assert results[-1].diagnostic == "550 5.1.1 No such user"
    assert results[-1].reason == "userunknown"


def test_text_bounce_cut_at_whole_line():
    # A notice cut at max_recipient_list_text ends at a line, so no half address is reported.
    limits = Limits(max_scan_text=1000, max_recipient_list_text=2000)
    results = classify(_text_bounce_listing(100), limits=limits)

    assert 0 < len(results) < 100
    assert all(result.recipient.endswith("@example.org") for result in results)


def test_first_mentions_found_in_one_pass():
    # With no direct searches allowed, the single pass alone must place every recipient.
    recipients = [f"user{index}@example.org" for index in range(10_000)]
    notice = "".join(f"<{address}>: 550 5.1.1 No such user\n" for address in recipients).lower()

    mentions = _first_mentions(notice, recipients, max_lookups=0)

    assert -1 not in mentions
    assert mentions == sorted(mentions)
    assert mentions[1] == notice.index("user1@example.org")


def test_first_mentions_searches_inside_longer_words():
    notice = "delivery to x-user@example.org.invalid failed: 550 unknown\n"

    assert _first_mentions(notice, ["user@example.org"], max_lookups=1) == [notice.index("user@")]
    assert _first_mentions(notice, ["user@example.org"], max_lookups=0) == [-1]


def _failed_recipients_header(count: int) -> bytes:
    """Build an X-Failed-Recipients field folded after every address, as Exim writes it."""
    addresses = b",\n  ".join(b"user%05d@example.org" % index for index in range(count))
    return b"X-Failed-Recipients: " + addresses + b"\n"


def test_x_failed_recipients_10000_addresses():
    data = (_failed_recipients_header(10_000) + BOUNCE_HEAD
            + b"\nThis message could not be delivered to its recipients.\n")

    results = _classify_in_time(data)

    assert len(results) == 10_000
    assert results[-1].recipient == "user09999@example.org"


def test_address_list_field_bounded():
    limits = Limits(max_address_list_size=1000)
    head = _failed_recipients_header(1000) + b"Subject: after the list\n"

    fields = parse_header_block(head, limits)

    assert len(fields["x-failed-recipients"][0]) <= 1000
    assert fields["x-failed-recipients"][0].startswith("user00000@example.org, user00001")
    assert fields["subject"] == ["after the list"]


def test_address_list_bound_shared_by_repeats():
    # Repeated fields share one budget, so many copies cannot multiply it.
    limits = Limits(max_address_list_size=1000)
    head = _failed_recipients_header(30) * 50

    values = parse_header_block(head, limits)["x-failed-recipients"]

    assert sum(len(value) for value in values) <= 1000
    assert values[0].endswith("user00029@example.org")


def test_other_fields_keep_line_limit():
    limits = Limits(max_line_length=100)
    head = b"Subject: " + b"s" * 5000 + b"\n" + _failed_recipients_header(200)

    fields = parse_header_block(head, limits)

    # The line is cut to max_line_length bytes with its field name.
    assert len(b"Subject: ") + len(fields["subject"][0]) == 100
    assert fields["x-failed-recipients"][0].endswith("user00199@example.org")


def test_cli_batch_goes_on_past_bad_inputs(tmp_path):
    good = tmp_path / "good.eml"
    good.write_bytes(postfix_dsn())
    inputs = {
        "empty.eml": b"",
        "blank.eml": b"\n\n   \n",
        "binary.bin": bytes(range(256)) * 100,
        "one-line.txt": b"x" * 100 * MEGABYTE,
    }
    for name, data in inputs.items():
        (tmp_path / name).write_bytes(data)

    paths = [str(tmp_path / name) for name in inputs] + [str(good), str(tmp_path / "absent.eml")]
    started = time.perf_counter()
    finished = run_cli("classify", "--format", "jsonl", "--jobs", "1", *paths)
    assert time.perf_counter() - started < 30

    rows = [json.loads(line) for line in finished.stdout.decode().splitlines()]
    assert [row["source"] for row in rows] == [str(good)]
    errors = finished.stderr.decode().splitlines()
    assert len(errors) == len(inputs) + 1
    for path, line in zip(paths[:4] + paths[5:], errors):
        assert line.startswith(f"bouncewise: {path}: ")
    assert "Traceback" not in finished.stderr.decode()
    assert finished.returncode == 1


def test_cli_100mb_line_in_header_message(tmp_path):
    path = tmp_path / "long.eml"
    with open(path, "wb") as stream:
        stream.write(BOUNCE_HEAD + b"\n")
        stream.write(b"y" * 100 * MEGABYTE)
        stream.write(b"\n")
    started = time.perf_counter()
    finished = run_cli("classify", "--format", "jsonl", str(path))
    assert time.perf_counter() - started < 30
    assert finished.returncode == 0
    assert finished.stderr == b""


def test_cli_mbox_with_bad_message(tmp_path):
    mbox = tmp_path / "box"
    separator = b"From MAILER-DAEMON Tue May 14 09:12:44 2024\n"
    mbox.write_bytes(separator + postfix_dsn() + b"\n" + separator + b"\x00\x01 junk\n\n"
                     + separator + postfix_dsn())
    finished = run_cli("classify", "--format", "jsonl", str(mbox))
    rows = [json.loads(line) for line in finished.stdout.decode().splitlines()]
    assert [row["source"] for row in rows] == [f"{mbox}#1", f"{mbox}#3"]
    assert finished.stderr.decode().startswith(f"bouncewise: {mbox}#2: not a mail message")
    assert finished.returncode == 1
