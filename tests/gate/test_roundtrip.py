"""Round trips through real servers: a private Postfix relays through `bouncewise gate`.

Postfix on loopback relays every message to the gate, which relays clean mail to a sink. When
the gate refuses a message, Postfix writes a bounce to the sender. Mail for sender.test goes to
the sink as well, so the tests read the bounce there with both bouncewise and Sisimai. The
scanners are the built-in one, and real spamd and clamd started by the tests.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from email.message import EmailMessage
from pathlib import Path

import pytest

from bouncewise.gate.scanners.builtin import GTUBE
from gaterun import GateProcess
from postfix import ProxyPostfix, RelayPostfix, postfix_missing_reason
from services import clamd_service, eicar_bytes, spamd_service
from sink import SmtpSink, free_port
from sisimai import classify_bytes, sisimai_missing_reason

POSTFIX_SKIP_REASON = postfix_missing_reason()
pytestmark = pytest.mark.skipif(POSTFIX_SKIP_REASON is not None, reason=POSTFIX_SKIP_REASON or "")

SENDER = "ann@sender.test"
RECIPIENT = "bob@dest.test"
BOUNCEWISE_COMMAND = Path(sys.executable).with_name("bouncewise")

BUILTIN_CONFIG = '[[scanner]]\ntype = "builtin"\n'


def _directory(stack: ExitStack) -> Path:
    """Make a working directory that `stack` removes after the servers in it have stopped."""
    # Postfix's own user must be able to search the path, which pytest's tmp_path does not allow.
    directory = Path(tempfile.mkdtemp(prefix="bouncewise-gate-"))
    stack.callback(shutil.rmtree, directory, ignore_errors=True)
    directory.chmod(0o711)
    for name in ("spamd", "clamd"):
        (directory / name).mkdir()
    return directory


def _message(tag: str, body: str = "A plain message.\n", eicar: bool = False) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Ann <{SENDER}>"
    message["To"] = RECIPIENT
    message["Subject"] = f"Round trip {tag}"
    message["Message-ID"] = f"<{tag}@sender.test>"
    message.set_content(body)
    if eicar:
        message.add_attachment(eicar_bytes(), maintype="application", subtype="octet-stream",
                               filename="test.com")
    return message


def _tag() -> str:
    return f"rt-{uuid.uuid4().hex[:12]}"


class Setup:
    """A sink, the gate in front of it, and Postfix relaying through the gate."""

    def __init__(self, stack: ExitStack, config_text: str) -> None:
        directory = _directory(stack)
        self.sink = stack.enter_context(SmtpSink())
        self.gate = stack.enter_context(GateProcess(self.sink.port, config_text, directory))
        self.postfix = stack.enter_context(RelayPostfix(
            directory / "postfix", smtp_port=free_port(), gate_port=self.gate.port,
            sink_port=self.sink.port))

    def bounce_for(self, tag: str) -> bytes:
        """Return the bounce Postfix wrote about the message tagged `tag`."""
        bounce = self.sink.wait_for_message(f"<{tag}@sender.test>".encode())
        assert bounce.mail_from == ""
        assert bounce.rcpt_tos == (SENDER,)
        return bounce.data


def _scanner_setup(name: str, stack: ExitStack) -> Setup:
    if name == "builtin":
        return Setup(stack, BUILTIN_CONFIG)
    directory = _directory(stack)
    spamd = stack.enter_context(spamd_service(directory / "spamd"))
    clamd = stack.enter_context(clamd_service(directory / "clamd"))
    config = (f'[[scanner]]\ntype = "spamd"\naddress = "{spamd.address}"\ntimeout = 60\n'
              f'[[scanner]]\ntype = "clamd"\naddress = "{clamd.address}"\ntimeout = 30\n')
    return Setup(stack, config)


@pytest.fixture(scope="module", params=["builtin", "spamd+clamd"])
def setup(request) -> Iterator[Setup]:
    with ExitStack() as stack:
        yield _scanner_setup(request.param, stack)


def _classified(bounce: bytes) -> list[dict]:
    import json

    completed = subprocess.run([str(BOUNCEWISE_COMMAND), "classify", "--format", "jsonl", "-"],
                               input=bounce, capture_output=True, check=True)
    return [json.loads(line) for line in completed.stdout.splitlines()]


def _sisimai_reasons(bounce: bytes) -> list[str]:
    reason = sisimai_missing_reason()
    if reason:
        pytest.skip(reason)
    return [row["reason"] for row in classify_bytes(bounce)]


def test_clean_message_arrives_intact(setup):
    tag = _tag()
    message = _message(tag, "Plain words.\n.A line that starts with a dot.\n")
    setup.postfix.submit(SENDER, [RECIPIENT], message)

    arrived = setup.sink.wait_for_message(f"<{tag}@sender.test>".encode())
    original = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    assert arrived.rcpt_tos == (RECIPIENT,)
    assert arrived.data.endswith(original.split(b"\r\n\r\n", 1)[1])
    assert b"Subject: Round trip " + tag.encode() in arrived.data


def test_spam_bounce_reads_as_spam(setup):
    tag = _tag()
    setup.postfix.submit(SENDER, [RECIPIENT], _message(tag, f"Buy now.\n{GTUBE.decode()}\n"))

    bounce = setup.bounce_for(tag)
    rows = _classified(bounce)
    assert [(row["recipient"], row["reason"], row["category"]) for row in rows] == [
        (RECIPIENT, "spamdetected", "spam-block")]
    assert rows[0]["hard_bounce"] is False
    assert _sisimai_reasons(bounce) == ["spamdetected"]
    assert not any(f"<{tag}@" in message.data.decode(errors="replace")
                   for message in setup.sink.messages() if message.mail_from)


def test_virus_bounce_reads_as_virus(setup):
    tag = _tag()
    setup.postfix.submit(SENDER, [RECIPIENT], _message(tag, eicar=True))

    bounce = setup.bounce_for(tag)
    rows = _classified(bounce)
    assert [(row["reason"], row["category"]) for row in rows] == [("virusdetected", "virus")]
    assert _sisimai_reasons(bounce) == ["virusdetected"]


def test_refusal_reference_names_the_log_line(setup):
    tag = _tag()
    setup.postfix.submit(SENDER, [RECIPIENT], _message(tag, GTUBE.decode()))

    bounce = setup.bounce_for(tag).decode(errors="replace")
    reference = bounce.split("(ref ", 1)[1][:10]
    lines = [line for line in setup.gate.log_lines() if f" {reference}: " in f" {line}"]
    assert len(lines) == 1
    assert "verdict=spam" in lines[0]
    assert f"from=<{SENDER}>" in lines[0]


def test_stopped_scanner_keeps_mail_queued():
    with ExitStack() as stack:
        directory = _directory(stack)
        clamd = stack.enter_context(clamd_service(directory / "clamd"))
        config = f'[[scanner]]\ntype = "clamd"\naddress = "{clamd.address}"\ntimeout = 10\n'
        setup = Setup(stack, config)
        clamd.stop()

        tag = _tag()
        queue_id = setup.postfix.submit(SENDER, [RECIPIENT], _message(tag))

        queued = setup.postfix.wait_until(lambda: [
            message for message in setup.postfix.queue()
            if message.queue_id == queue_id and any("4.3.0" in reason
                                                   for reason in message.delay_reasons)])
        assert queued
        assert all(f"<{tag}@".encode() not in message.data
                   for message in setup.sink.messages(accepted_only=False))


def test_postfix_proxy_filter_shape():
    """The master.cf lines of the README: Postfix hands each session to the gate."""
    with ExitStack() as stack:
        directory = _directory(stack)
        sink = stack.enter_context(SmtpSink())
        after_filter_port = free_port()
        gate = stack.enter_context(GateProcess(after_filter_port, BUILTIN_CONFIG, directory))
        postfix = stack.enter_context(ProxyPostfix(
            directory / "postfix", smtp_port=free_port(), filter_port=gate.port,
            after_filter_port=after_filter_port, sink_port=sink.port))

        tag = _tag()
        postfix.submit(SENDER, [RECIPIENT], _message(tag))
        sink.wait_for_message(f"<{tag}@sender.test>".encode())

        import smtplib
        with pytest.raises(smtplib.SMTPDataError) as refusal:
            postfix.submit(SENDER, [RECIPIENT], _message(_tag(), GTUBE.decode()))
        assert refusal.value.smtp_code == 554
        assert b"rejected as spam" in refusal.value.smtp_error

        # Postfix passed the real client's address with XFORWARD, so the log names it.
        accepted = [line for line in gate.log_lines() if "verdict=accepted" in line]
        assert accepted
        assert "client=unknown[127.0.0.1]" in accepted[0]
