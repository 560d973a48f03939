"""The lean message reader, header parsing and the input readers."""

from __future__ import annotations

import io

from conftest import postfix_dsn

from bouncewise.config import DEFAULT_LIMITS, Limits
from bouncewise.mail.headers import parse_header_block
from bouncewise.mail.message import Message, decode_base64, split_head, unreadable_cause
from bouncewise.mail.sources import iter_items


def test_split_head_at_first_blank_line():
    head, body = split_head(b"Subject: x\nFrom: a@example.org\n\nbody\n\nmore\n", DEFAULT_LIMITS)
    assert head == b"Subject: x\nFrom: a@example.org\n"
    assert body == b"body\n\nmore\n"


def test_split_head_without_blank_line():
    head, body = split_head(b"Subject: x\n", DEFAULT_LIMITS)
    assert head == b"Subject: x\n"
    assert body == b""


def test_header_unfolding_and_case():
    fields = parse_header_block(b"Subject: one\n two\nX-Test: a\nx-test: b\n", DEFAULT_LIMITS)
    assert fields["subject"] == ["one two"]
    assert fields["x-test"] == ["a", "b"]


def test_long_header_line_keeps_later_fields():
    head = b"Subject: " + b"a" * 3_000_000 + b"\nFrom: mailer-daemon@example.org\n"
    fields = parse_header_block(head, DEFAULT_LIMITS)
    assert len(fields["subject"][0]) == DEFAULT_LIMITS.max_line_length - len("Subject: ")
    assert fields["from"] == ["mailer-daemon@example.org"]


def test_folded_header_value_is_capped():
    head = b"Subject: x\n" + b" word\n" * 200_000 + b"From: a@example.org\n"
    fields = parse_header_block(head, DEFAULT_LIMITS)
    assert len(fields["subject"][0]) <= DEFAULT_LIMITS.max_line_length
    assert fields["from"] == ["a@example.org"]


def test_header_size_limit_stops_parsing():
    limits = Limits(max_header_size=64)
    head = b"A: 1\n" + b"X-Pad: " + b"p" * 100 + b"\nB: 2\n"
    fields = parse_header_block(head, limits)
    assert "a" in fields
    assert "b" not in fields


def test_invalid_field_names_are_skipped():
    fields = parse_header_block(b"\x00bad: 1\nno colon here\nGood: 2\n", DEFAULT_LIMITS)
    assert fields == {"good": ["2"]}


def test_crlf_and_cr_give_same_parts():
    lf = postfix_dsn()
    for variant in (lf.replace(b"\n", b"\r\n"), lf.replace(b"\n", b"\r")):
        parts = [part.content_type for part in Message(variant).walk()]
        assert parts == [part.content_type for part in Message(lf).walk()]


def test_dsn_parts_walked_in_order():
    types = [part.content_type for part in Message(postfix_dsn()).walk()]
    assert types[:4] == ["multipart/report", "text/plain", "message/delivery-status",
                         "text/rfc822-headers"]


def test_mime_depth_limit():
    nested = b"".join(b"Content-Type: message/rfc822\n\n" for _ in range(100)) + b"Subject: x\n\nhi\n"
    parts = list(Message(nested, Limits(max_mime_depth=5)).walk())
    assert max(part.depth for part in parts) == 5


def test_mime_part_count_limit():
    body = b"--a\nContent-Type: text/plain\n\nx\n" * 5000 + b"--a--\n"
    message = Message(b"Content-Type: multipart/mixed; boundary=a\n\n" + body, Limits(max_mime_parts=50))
    assert len(list(message.walk())) <= 50


def test_unclosed_boundary_keeps_last_part():
    raw = b"Content-Type: multipart/mixed; boundary=a\n\n--a\n\nfirst\n--a\n\nsecond without end\n"
    texts = [part.text().strip() for part in Message(raw).children()]
    assert texts == ["first", "second without end"]


def test_longer_boundary_is_not_a_delimiter():
    raw = b"Content-Type: multipart/mixed; boundary=a\n\n--a\n\none\n--ab\nstill one\n--a--\n"
    children = Message(raw).children()
    assert len(children) == 1
    assert b"--ab" in children[0].body


def test_message_size_limit_marks_truncated():
    message = Message(b"Subject: x\n\n" + b"y" * 1000, Limits(max_message_size=100))
    assert message.truncated
    assert len(message.body) < 100


def test_text_cuts_long_lines():
    message = Message(b"Subject: x\n\n" + b"z" * 50_000 + b"\nend\n", Limits(max_line_length=100))
    lines = message.text().split("\n")
    assert len(lines[0]) == 100
    assert lines[1] == "end"


def test_unknown_charset_falls_back():
    message = Message(b"Content-Type: text/plain; charset=x-no-such-charset\n\nna\xc3\xafve\n")
    assert message.text() == "na\u00efve\n"


def test_non_text_codec_charset_falls_back():
    message = Message(b"Content-Type: text/plain; charset=rot13\n\nplain\n")
    assert message.text() == "plain\n"


def test_broken_base64_decodes_what_it_can():
    assert decode_base64(b"aGVsbG8gd29ybGQ=!!") == b"hello world"
    assert decode_base64(b"aGVsbG8@@@") == b"hello"
    assert decode_base64(b"@@@@") == b""


def test_unreadable_cause_examples():
    assert unreadable_cause(b"") == "empty input"
    assert unreadable_cause(b"\n \r\n") == "no message: only blank bytes"
    assert unreadable_cause(b"\x89PNG\r\n\x1a\n").startswith("not a mail message")
    assert unreadable_cause(b"just some text\n") .startswith("not a mail message")
    assert unreadable_cause(b"From MAILER-DAEMON Tue May 14 09:12:44 2024\n") == ""
    assert unreadable_cause(b"\nReturn-Path: <>\n") == ""


def _items(path):
    return list(iter_items([str(path)]))


def test_mbox_split_and_unquote(tmp_path):
    mbox = tmp_path / "box"
    mbox.write_bytes(b"From a@example.org Tue May 14 09:00:00 2024\nSubject: one\n\n>From here\n\n"
                     b"From b@example.org Tue May 14 09:01:00 2024\nSubject: two\n\nbody\nFrom inside\n")
    items = _items(mbox)
    assert [item.source for item in items] == [f"{mbox}#1", f"{mbox}#2"]
    assert items[0].data == b"Subject: one\n\nFrom here\n\n"
    assert items[1].data.endswith(b"body\nFrom inside\n")


def test_mbox_envelope_without_blank_line(tmp_path):
    # Some delivery programs append the next message right after the last line of the previous
    # one. A full envelope line still starts a message; prose that begins with "From " does not.
    mbox = tmp_path / "joined"
    mbox.write_bytes(b"From a@example.org  Thu Jul  2 12:05:05 2020\nSubject: one\n\nbody\nFrom the desk\n"
                     b"From b@example.org Thu Jul  2 12:06:00 2020\nSubject: two\n\nbody\n")
    items = list(iter_items([str(mbox)]))
    assert [item.source for item in items] == [f"{mbox}#1", f"{mbox}#2"]
    assert items[0].data.endswith(b"From the desk\n")


def test_mbox_long_line_is_not_split(tmp_path):
    mbox = tmp_path / "box"
    long_line = b"x" * (DEFAULT_LIMITS.max_line_length - 1) + b"\n" + b"y" * 100
    mbox.write_bytes(b"From a@example.org Tue May 14 09:00:00 2024\nSubject: one\n\n"
                     + b"q" * (DEFAULT_LIMITS.max_line_length * 3) + b"From not a separator\n" + long_line)
    assert len(_items(mbox)) == 1


def test_maildir_reads_new_and_cur_only(tmp_path):
    for folder in ("cur", "new", "tmp"):
        (tmp_path / folder).mkdir()
    (tmp_path / "new" / "1.host").write_bytes(postfix_dsn())
    (tmp_path / "cur" / "2.host:2,S").write_bytes(postfix_dsn())
    (tmp_path / "tmp" / "3.host").write_bytes(postfix_dsn())
    sources = [item.source for item in _items(tmp_path)]
    assert sources == [str(tmp_path / "new" / "1.host"), str(tmp_path / "cur" / "2.host:2,S")]


def test_folder_recursive_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.eml").write_bytes(postfix_dsn())
    (tmp_path / "a.eml").write_bytes(postfix_dsn())
    (tmp_path / ".hidden").write_bytes(postfix_dsn())
    sources = [item.source for item in _items(tmp_path)]
    assert sources == [str(tmp_path / "a.eml"), str(tmp_path / "b" / "z.eml")]


def test_missing_path_gives_error_item(tmp_path):
    items = _items(tmp_path / "absent.eml")
    assert items[0].error == "not found"


def test_binary_file_rejected_on_first_line(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"\x00\x01\x02\xff" * 1000)
    assert _items(path)[0].error.startswith("not a mail message")


def test_stdin_stream(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(postfix_dsn())))
    items = list(iter_items(["-"]))
    assert [item.source for item in items] == ["-"]
    assert items[0].data == postfix_dsn()


def test_mbox_with_bare_cr_line_endings(tmp_path):
    mbox = tmp_path / "box"
    text = (b"From a@example.org Tue May 14 09:00:00 2024\nSubject: one\n\nbody\n\n"
            b"From b@example.org Tue May 14 09:01:00 2024\nSubject: two\n\nbody\n")
    mbox.write_bytes(text.replace(b"\n", b"\r"))
    items = _items(mbox)
    assert [item.source for item in items] == [f"{mbox}#1", f"{mbox}#2"]
    assert items[1].data == b"Subject: two\n\nbody\n"


def test_classify_rejects_other_types():
    import pytest

    from bouncewise import classify

    with pytest.raises(TypeError):
        classify(5)


def test_classify_missing_path_named():
    import pytest

    from bouncewise import UnreadableInput, classify

    with pytest.raises(UnreadableInput, match="no file is named"):
        classify("/nonexistent/bounce.eml")


def test_classify_message_with_8bit_text():
    import email

    from bouncewise import classify

    message = email.message_from_string(
        "From: a@example.org\nContent-Type: text/plain; charset=utf-8\n\nhé\n")
    assert classify(message) == []


def test_classify_lone_surrogate():
    from bouncewise import classify

    assert classify("From: a@example.org\n\n\ud800") == []


def test_folder_skips_named_pipe(tmp_path):
    import os

    from bouncewise.mail.sources import iter_items

    (tmp_path / "a.eml").write_bytes(b"From: a@example.org\n\nhello\n")
    os.mkfifo(tmp_path / "b.fifo")
    items = list(iter_items([str(tmp_path)]))
    assert [item.source.rsplit("/", 1)[1] for item in items] == ["a.eml", "b.fifo"]
    assert items[1].error == "not a regular file, skipped"


def test_iter_classify_single_path(tmp_path):
    from bouncewise import iter_classify

    (tmp_path / "a.eml").write_bytes(b"From: a@example.org\n\nhello\n")
    assert list(iter_classify(str(tmp_path))) == []


def test_broken_encoded_words_kept_as_written():
    from bouncewise.mail.headers import decode_words

    assert decode_words("=?utf-8?b?////?=") == "=?utf-8?b?////?="
    assert decode_words("=?utf\u00ed8?q?x?=") == "=?utf\u00ed8?q?x?="


def test_classify_broken_encoded_subject():
    from bouncewise import classify

    bounce = (b"From: MAILER-DAEMON@example.org\nTo: a@example.net\n"
              b"Subject: =?utf-8?b?QQ?= Undelivered\nAuto-Submitted: auto-replied\n\nhello\n")
    assert isinstance(classify(bounce), list)
