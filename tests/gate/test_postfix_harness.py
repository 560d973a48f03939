"""The private Postfix harness, with an aiosmtpd sink standing in for the gate.

A RelayPostfix relays to the stand-in gate and sends bounces for sender.test to a second sink.
A ProxyPostfix hands each SMTP session to the stand-in as its before-queue filter, which forwards
accepted mail to the after-filter smtpd. Each test tags its message with a unique Message-ID and
looks only for that, so the module-scoped instances can be shared.
"""

from __future__ import annotations

import json
import shutil
import smtplib
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from postfix import (PostfixError, ProxyPostfix, QueuedMessage, RelayPostfix, parse_queue_listing,
                     postfix_missing_reason, postfix_version)
from sink import ReceivedMessage, SmtpSink, free_port
from sisimai import classify_file, sisimai_missing_reason

POSTFIX_SKIP_REASON = postfix_missing_reason()
pytestmark = pytest.mark.skipif(POSTFIX_SKIP_REASON is not None, reason=POSTFIX_SKIP_REASON or "")

SENDER = "sender@sender.test"
RECIPIENT = "rcpt@dest.test"
SPAM_REPLY = "554 5.7.1 Message rejected as spam by the content filter (ref TEST1)"
BUSY_REPLY = "451 4.3.0 Content filter busy, try again later (ref TEST2)"
BOUNCEWISE_COMMAND = Path(sys.executable).with_name("bouncewise")


def make_message(tag: str) -> EmailMessage:
    """Build a plain message whose Message-ID and body carry `tag`."""
    message = EmailMessage()
    message["From"] = f"Sender <{SENDER}>"
    message["To"] = RECIPIENT
    message["Subject"] = f"Harness test {tag}"
    message["Message-ID"] = f"<{tag}@sender.test>"
    message["X-Harness-Tag"] = tag
    message.set_content(f"Body line for {tag}.\n.A line that starts with a dot.\n")
    return message


def new_tag() -> str:
    return f"harness-{uuid.uuid4().hex[:12]}"


def postfix_directory() -> Path:
    """Make an instance directory under the system temporary directory.

    pytest's tmp_path lies below a mode 0700 directory, which the postfix user cannot search.
    """
    return Path(tempfile.mkdtemp(prefix="bouncewise-postfix-"))


@pytest.fixture(scope="module")
def bounce_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def gate() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def relay(gate: SmtpSink, bounce_sink: SmtpSink) -> Iterator[RelayPostfix]:
    directory = postfix_directory()
    instance = RelayPostfix(directory, smtp_port=free_port(), gate_port=gate.port,
                            sink_port=bounce_sink.port)
    try:
        with instance:
            yield instance
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def reset_sinks(gate: SmtpSink, bounce_sink: SmtpSink) -> Iterator[None]:
    """Give each test sinks that accept everything, whatever the previous test set."""
    gate.reset()
    bounce_sink.reset()
    yield
    gate.reset()
    bounce_sink.reset()


def bounce_for(sink: SmtpSink, tag: str) -> ReceivedMessage:
    """Wait for the bounce that returns the message tagged `tag`."""
    return sink.wait_for_message(f"<{tag}@sender.test>".encode())


@pytest.fixture(scope="module")
def spam_bounce(relay: RelayPostfix, gate: SmtpSink, bounce_sink: SmtpSink,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[ReceivedMessage, Path]:
    """Send a message that the stand-in gate rejects as spam, and return the bounce and its file."""
    tag = new_tag()
    gate.set_data_reply(SPAM_REPLY)
    try:
        relay.submit(SENDER, [RECIPIENT], make_message(tag))
        bounce = bounce_for(bounce_sink, tag)
    finally:
        gate.set_data_reply(None)

    path = tmp_path_factory.mktemp("bounce") / "spam-bounce.eml"
    path.write_bytes(bounce.data)
    return bounce, path


def test_relay_delivers_message_intact(relay: RelayPostfix, gate: SmtpSink) -> None:
    tag = new_tag()
    queue_id = relay.submit(SENDER, [RECIPIENT], make_message(tag))

    received = gate.wait_for_message(tag.encode())
    parsed = received.parsed()
    assert queue_id
    assert received.mail_from == SENDER
    assert received.rcpt_tos == (RECIPIENT,)
    assert parsed["Message-ID"] == f"<{tag}@sender.test>"
    assert parsed["Subject"] == f"Harness test {tag}"
    assert parsed["X-Harness-Tag"] == tag
    assert parsed["From"] == f"Sender <{SENDER}>"
    assert parsed["To"] == RECIPIENT
    assert f"id {queue_id}" in parsed["Received"]
    assert parsed.get_content() == f"Body line for {tag}.\r\n.A line that starts with a dot.\r\n"
    relay.wait_until(lambda: any(f"{queue_id}: removed" in line for line in relay.log_lines()),
                     description=f"queue id {queue_id} removed from the queue")
    delivery = [line for line in relay.log_lines() if f"{queue_id}: to=<{RECIPIENT}>" in line]
    assert delivery
    assert "status=sent" in delivery[-1]


def test_relay_config_passes_postfix_check(relay: RelayPostfix) -> None:
    assert relay.check() == []
    assert relay.log_warnings() == []
    assert relay.postconf("relayhost") == f"[127.0.0.1]:{relay.gate_port}"


def test_relay_bounce_reaches_sender_sink(spam_bounce: tuple[ReceivedMessage, Path]) -> None:
    bounce, _ = spam_bounce
    parsed = bounce.parsed()

    assert bounce.mail_from == ""
    assert bounce.rcpt_tos == (SENDER,)
    assert parsed["Subject"] == "Undelivered Mail Returned to Sender"
    assert parsed.get_content_type() == "multipart/report"
    assert b"Status: 5.7.1" in bounce.data
    assert b"ref TEST1" in bounce.data


def test_relay_bounce_read_by_sisimai(spam_bounce: tuple[ReceivedMessage, Path]) -> None:
    reason = sisimai_missing_reason()
    if reason:
        pytest.skip(reason)
    _, path = spam_bounce

    rows = classify_file(path)

    assert len(rows) == 1
    assert rows[0]["recipient"] == RECIPIENT
    assert rows[0]["reason"] == "spamdetected"
    assert rows[0]["deliverystatus"] == "5.7.1"
    assert rows[0]["replycode"] == "554"
    assert "Message rejected as spam by the content filter (ref TEST1)" in rows[0]["diagnosticcode"]


def test_relay_bounce_read_by_bouncewise(spam_bounce: tuple[ReceivedMessage, Path]) -> None:
    _, path = spam_bounce
    assert BOUNCEWISE_COMMAND.exists(), f"{BOUNCEWISE_COMMAND} not found: pip install -e ."

    completed = subprocess.run([str(BOUNCEWISE_COMMAND), "classify", "--format", "json", str(path)],
                               capture_output=True, text=True, timeout=60, check=False)

    assert completed.returncode == 0, completed.stderr
    rows = json.loads(completed.stdout)
    assert len(rows) == 1
    assert rows[0]["recipient"] == RECIPIENT
    assert rows[0]["reason"] == "spamdetected"
    assert rows[0]["category"] == "spam-block"
    assert rows[0]["status"] == "5.7.1"
    assert rows[0]["reply_code"] == "554"


def test_relay_keeps_deferred_mail_queued(relay: RelayPostfix, gate: SmtpSink,
                                          bounce_sink: SmtpSink) -> None:
    tag = new_tag()
    gate.set_data_reply(BUSY_REPLY)
    queue_id = relay.submit(SENDER, [RECIPIENT], make_message(tag))

    def deferred_entry() -> QueuedMessage | None:
        return next((message for message in relay.queue() if message.queue_id == queue_id
                     and any("451 4.3.0" in reason for reason in message.delay_reasons)), None)

    queued = relay.wait_until(deferred_entry, description=f"{queue_id} deferred with 451 4.3.0")
    assert queued is not None
    assert queued.sender == SENDER
    assert queued.recipients[0].address == RECIPIENT
    assert "Content filter busy, try again later (ref TEST2)" in queued.recipients[0].delay_reason
    assert "in reply to end of DATA command" in queued.recipients[0].delay_reason
    assert queued.queue_name in ("deferred", "active")
    assert gate.messages(accepted_only=False)[0].reply == BUSY_REPLY
    assert gate.messages() == []
    assert bounce_sink.messages(accepted_only=False) == []

    listed = [message for message in parse_queue_listing(relay.queue_listing())
              if message.queue_id == queue_id]
    assert len(listed) == 1
    assert listed[0].sender == SENDER
    assert listed[0].recipients[0].address == RECIPIENT

    gate.set_data_reply(None)
    relay.flush()
    delivered = gate.wait_for_message(tag.encode())
    assert delivered.rcpt_tos == (RECIPIENT,)
    relay.wait_until(lambda: all(message.queue_id != queue_id for message in relay.queue()),
                     description=f"{queue_id} to leave the queue")
    assert bounce_sink.messages(accepted_only=False) == []


def test_sink_rejects_chosen_recipient(gate: SmtpSink) -> None:
    gate.reject_recipient("Gone@Dest.test", "550 5.1.1 <gone@dest.test>: User unknown")

    with smtplib.SMTP("127.0.0.1", gate.port, local_hostname="client.test", timeout=10) as client:
        refused = client.sendmail(SENDER, ["gone@dest.test", RECIPIENT], make_message("x").as_bytes())

    assert refused == {"gone@dest.test": (550, b"5.1.1 <gone@dest.test>: User unknown")}
    assert [message.rcpt_tos for message in gate.messages()] == [(RECIPIENT,)]


def test_instance_rejects_unsearchable_directory(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    instance = RelayPostfix(private / "postfix", smtp_port=free_port(), gate_port=free_port(),
                            sink_port=free_port())

    with pytest.raises(PostfixError, match="not searchable by the postfix user"):
        instance.write_config()


def test_stop_leaves_no_process(bounce_sink: SmtpSink) -> None:
    directory = postfix_directory()
    instance = RelayPostfix(directory, smtp_port=free_port(), gate_port=free_port(),
                            sink_port=bounce_sink.port)
    try:
        instance.start()
        master_pid = instance.master_pid()
        assert master_pid is not None
        assert master_pid in instance.instance_processes(master_pid)

        instance.stop()

        assert instance.instance_processes(master_pid) == []
        assert not instance.is_running()
        with pytest.raises(OSError):
            smtplib.SMTP("127.0.0.1", instance.smtp_port, local_hostname="client.test", timeout=5)
    finally:
        instance.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def proxy_setup() -> Iterator[tuple[ProxyPostfix, SmtpSink, SmtpSink]]:
    """Start a ProxyPostfix with a forwarding stand-in filter and a sink, and yield all three."""
    after_filter_port = free_port()
    directory = postfix_directory()
    with SmtpSink() as sink, SmtpSink(forward_to=("127.0.0.1", after_filter_port)) as gate_filter:
        instance = ProxyPostfix(directory, smtp_port=free_port(), filter_port=gate_filter.port,
                                after_filter_port=after_filter_port, sink_port=sink.port)
        try:
            with instance:
                yield instance, gate_filter, sink
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def test_proxy_passes_message_through_filter(
        proxy_setup: tuple[ProxyPostfix, SmtpSink, SmtpSink]) -> None:
    proxy, gate_filter, sink = proxy_setup
    gate_filter.reset()
    tag = new_tag()

    queue_id = proxy.submit(SENDER, [RECIPIENT], make_message(tag))

    filtered = gate_filter.wait_for_message(tag.encode())
    delivered = sink.wait_for_message(tag.encode())
    assert queue_id, "the after-filter smtpd's 'queued as' reply should reach the client"
    assert filtered.mail_from == SENDER
    assert filtered.rcpt_tos == (RECIPIENT,)
    assert delivered.mail_from == SENDER
    assert delivered.rcpt_tos == (RECIPIENT,)
    assert delivered.parsed()["Message-ID"] == f"<{tag}@sender.test>"
    assert f"Body line for {tag}." in delivered.parsed().get_content()
    assert proxy.check() == []


def test_proxy_filter_rejection_reaches_client(
        proxy_setup: tuple[ProxyPostfix, SmtpSink, SmtpSink]) -> None:
    proxy, gate_filter, sink = proxy_setup
    gate_filter.reset()
    gate_filter.set_data_reply(SPAM_REPLY)
    tag = new_tag()

    with pytest.raises(smtplib.SMTPDataError) as raised:
        proxy.submit(SENDER, [RECIPIENT], make_message(tag))

    assert raised.value.smtp_code == 554
    assert raised.value.smtp_error == SPAM_REPLY.removeprefix("554 ").encode()
    assert gate_filter.messages(accepted_only=False)[0].reply == SPAM_REPLY
    assert all(tag.encode() not in message.data for message in sink.messages(accepted_only=False))
    assert proxy.queue() == []
    rejections = [line for line in proxy.log_lines() if "proxy-reject: END-OF-MESSAGE" in line]
    assert rejections
    assert "ref TEST1" in rejections[-1]


def test_postfix_version_is_supported() -> None:
    version = postfix_version()
    assert version is not None
    assert version >= (3, 6)
