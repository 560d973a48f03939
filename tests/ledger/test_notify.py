"""Tests of notice delivery against a real SMTP relay stand-in and a real HTTP endpoint.

The relay is the aiosmtpd sink of the gate's tests, and the application's webhook endpoint is
an http.server in a thread. Both listen on 127.0.0.1. Every test that touches the database
runs on SQLite and on PostgreSQL (skipped where no server runs at 127.0.0.1:5432).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select

from bouncewise.ledger import notify
from bouncewise.ledger.config import LedgerConfig
from bouncewise.ledger.intake import Intake
from bouncewise.ledger.models import Notice
from bouncewise.ledger.notify import (build_mail, deliver_due, sign_body, verify_signature,
                                      webhook_body)
from bouncewise.ledger.store import Ledger
from bounces import postfix_dsn
from ledgerrun import config_for, database_url  # noqa: F401

SECRET = "webhook-test-secret"
SPAM_REPLY = "554 5.7.1 Message rejected as spam by the content filter"
ARRIVAL = datetime(2024, 5, 14, 7, 12, 39, tzinfo=UTC)
NOTICE_SENDER = "postmaster@notices.test"
# Seconds the endpoint waits before it responds in the concurrency test, so that both workers
# are sending at the same time.
ENDPOINT_DELAY = 0.02
LOOPBACK = "127.0.0.1"


def _load_sink_module():
    """Import tests/gate/sink.py, which is not on sys.path when only this folder runs."""
    path = Path(__file__).resolve().parent.parent / "gate" / "sink.py"
    spec = importlib.util.spec_from_file_location("ledger_notify_sink", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses looks the module up in sys.modules while the classes are defined.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sink = _load_sink_module()


def spam_bounce(recipient: str = "bob@example.net", sender: str = "ann@sender.test",
                subject: str = "Quarterly figures",
                message_id: str = "<figures-2024q2@sender.test>") -> bytes:
    """Return a Postfix DSN saying that `recipient`'s server refused `sender`'s message as
    spam, with the original headers attached."""
    return postfix_dsn(recipient, SPAM_REPLY, to=sender, sender=sender, arrival=ARRIVAL,
                       subject=subject, message_id=message_id)


class WebhookEndpoint:
    """An application's webhook endpoint on 127.0.0.1 that stores each POST and responds
    with `status`."""

    def __init__(self) -> None:
        self.status = 200
        self.delay = 0.0
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with endpoint._lock:
                    endpoint.requests.append((dict(self.headers.items()), body))
                    status = endpoint.status
                if endpoint.delay:
                    threading.Event().wait(endpoint.delay)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/moved")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}/bounces/notice"
        # A short poll interval keeps shutdown() from waiting the default half second.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> WebhookEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def bodies(self) -> list[dict]:
        with self._lock:
            return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def relay() -> Iterator:
    with sink.SmtpSink() as server:
        yield server


@pytest.fixture
def endpoint() -> Iterator[WebhookEndpoint]:
    with WebhookEndpoint() as server:
        yield server


def notify_config(url: str, relay_port: int | None = None, webhook_url: str = "",
                  timeout: float = 5.0, **notify_settings) -> LedgerConfig:
    """Return a configuration for `url` that sends through the given relay and webhook."""
    table: dict = dict(notify_settings)
    if relay_port is not None:
        table["mail"] = {"relay": f"{LOOPBACK}:{relay_port}", "sender": NOTICE_SENDER,
                         "timeout": timeout}
    if webhook_url:
        table["webhook"] = {"url": webhook_url, "secret": SECRET, "timeout": timeout}
    return config_for(url, notify=table)


@contextmanager
def open_ledger(config: LedgerConfig) -> Iterator[Ledger]:
    ledger = Ledger(config)
    try:
        yield ledger
    finally:
        ledger.close()


def ingest(ledger: Ledger, config: LedgerConfig, folder: Path, *bounces: bytes) -> int:
    """Record `bounces` through the intake, and return how many notices it queued to send."""
    folder.mkdir()
    paths = []
    for number, data in enumerate(bounces):
        path = folder / f"bounce-{number}.eml"
        path.write_bytes(data)
        paths.append(str(path))
    return Intake(ledger, config).ingest_paths(paths).notices


def notices(ledger: Ledger) -> list[Notice]:
    with ledger.transaction() as session:
        return list(session.execute(select(Notice).order_by(Notice.id)).scalars())


def aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def test_spam_bounce_sends_mail_and_webhook(database_url, relay, endpoint, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="bouncewise.ledger")
    config = notify_config(database_url, relay.port, endpoint.url)
    with open_ledger(config) as ledger:
        assert ingest(ledger, config, tmp_path / "in", spam_bounce()) == 2
        now = datetime.now(UTC)

        stats = deliver_due(ledger, config, now=now)

        assert (stats.sent, stats.failed, stats.given_up) == (2, 0, 0)
        rows = {row.channel: row for row in notices(ledger)}
        assert set(rows) == {"mail", "webhook"}
        for row in rows.values():
            assert row.state == "sent"
            assert row.attempts == 1
            assert aware(row.sent_at) == now
            assert row.last_error == ""

        # The mail: null envelope sender, RFC 3834 header, and the facts in plain words.
        [received] = relay.messages()
        assert received.mail_from == ""
        assert received.rcpt_tos == ("ann@sender.test",)
        message = received.parsed()
        assert message["From"] == NOTICE_SENDER
        assert message["To"] == "ann@sender.test"
        assert message["Subject"] == "Your message to bob@example.net was refused as spam"
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["Message-ID"].endswith("@notices.test>")
        assert message["Date"]
        # The message arrived as sent over SMTP, with CRLF line ends.
        text = message.get_content().replace("\r\n", "\n")
        assert f"Server's reply:    {SPAM_REPLY}\n" in text
        assert "Receiving server:  mx.dest.test\n" in text
        assert "When:              2024-05-14 07:12:39 UTC\n" in text
        assert "Your subject:      Quarterly figures\n" in text
        assert "Your Message-ID:   <figures-2024q2@sender.test>\n" in text
        # The prose is wrapped, so it is compared with its whitespace joined.
        prose = " ".join(text.split())
        assert "What to do: The recipient's server judged your message to be spam" in prose
        assert "at most one such notice per hour" in prose
        assert max(len(line) for line in text.splitlines()) <= 78

        # The webhook: signed JSON that names the notice.
        [(headers, body)] = endpoint.requests
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Bouncewise-Notice"] == str(rows["webhook"].id)
        assert verify_signature(body, headers["X-Bouncewise-Signature"], SECRET)
        assert not verify_signature(body.replace(b"bob@", b"eve@"),
                                    headers["X-Bouncewise-Signature"], SECRET)
        document = json.loads(body)
        assert document["notice_id"] == rows["webhook"].id
        assert document["channel"] == "webhook"
        assert document["target"] == "ann@sender.test"
        assert document["recipient"] == "bob@example.net"
        assert document["category"] == "spam-block"
        assert document["reply"] == SPAM_REPLY
        assert document["advice"]

        # One key=value line per attempt.
        lines = [record.getMessage() for record in caplog.records
                 if record.getMessage().startswith("notify:")]
        assert (f"notify: notice={rows['mail'].id} channel=mail target=<ann@sender.test> "
                f"state=sent attempts=1 error=\"\"") in lines
        assert len(lines) == 2

        # Nothing is due any more.
        again = deliver_due(ledger, config, now=now + timedelta(days=1))
        assert (again.sent, again.failed, again.given_up) == (0, 0, 0)
        assert len(relay.messages()) == 1
        assert len(endpoint.requests) == 1


def test_verify_signature_cases():
    body = webhook_body(7, "webhook", "ann@sender.test", {"recipient": "bob@example.net"})
    header = sign_body(body, SECRET)

    assert header.startswith("sha256=")
    assert verify_signature(body, header, SECRET)
    assert verify_signature(body, f" {header.upper().replace('SHA256=', 'sha256=')} ", SECRET)
    assert not verify_signature(body + b" ", header, SECRET)
    assert not verify_signature(body, header, "another secret")
    assert not verify_signature(body, header.removeprefix("sha256="), SECRET)
    assert not verify_signature(body, "", SECRET)
    assert not verify_signature(body, header, "")
    assert not verify_signature(body, "sha256=\u00e9\u00e9", SECRET)


def test_endpoints_down_retried_then_given_up(database_url, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="bouncewise.ledger")
    closed_relay = sink.free_port()
    closed_webhook = f"http://{LOOPBACK}:{sink.free_port()}/hook"
    config = notify_config(database_url, closed_relay, closed_webhook, retry_base=60.0,
                           max_attempts=3)
    with open_ledger(config) as ledger:
        assert ingest(ledger, config, tmp_path / "in", spam_bounce()) == 2
        start = datetime.now(UTC)

        first = deliver_due(ledger, config, now=start)
        assert (first.sent, first.failed, first.given_up) == (0, 2, 0)
        for row in notices(ledger):
            assert row.state == "pending"
            assert row.attempts == 1
            assert aware(row.next_attempt_at) == start + timedelta(seconds=60)
            assert "refused" in row.last_error.lower()
            assert "\n" not in row.last_error

        # Not due before the wait has passed.
        early = deliver_due(ledger, config, now=start + timedelta(seconds=59))
        assert (early.sent, early.failed, early.given_up) == (0, 0, 0)

        # The second wait is twice the first.
        second = deliver_due(ledger, config, now=start + timedelta(seconds=60))
        assert second.failed == 2
        for row in notices(ledger):
            assert row.attempts == 2
            assert aware(row.next_attempt_at) == start + timedelta(seconds=180)

        third = deliver_due(ledger, config, now=start + timedelta(seconds=180))
        assert (third.sent, third.failed, third.given_up) == (0, 0, 2)
        rows = notices(ledger)
        for row in rows:
            assert row.state == "given-up"
            assert row.attempts == 3
            assert row.last_error

        later = deliver_due(ledger, config, now=start + timedelta(days=30))
        assert (later.sent, later.failed, later.given_up) == (0, 0, 0)

    warnings = [record.getMessage() for record in caplog.records
                if record.levelno == logging.WARNING]
    assert len(warnings) == 2
    for row in rows:
        [line] = [text for text in warnings if f"notice={row.id} " in text]
        assert "state=given-up" in line
        assert "target=<ann@sender.test>" in line
        assert f'error="{row.last_error}"' in line


def test_webhook_error_statuses_are_failures(database_url, endpoint, tmp_path):
    config = notify_config(database_url, webhook_url=endpoint.url, retry_base=10.0,
                           max_attempts=5)
    with open_ledger(config) as ledger:
        assert ingest(ledger, config, tmp_path / "in", spam_bounce()) == 1
        now = datetime.now(UTC)

        for attempt, status in enumerate((500, 404, 302), start=1):
            endpoint.status = status
            stats = deliver_due(ledger, config, now=now)
            assert stats.failed == 1, status
            [row] = notices(ledger)
            assert row.state == "pending"
            assert row.attempts == attempt
            assert f"HTTP {status}" in row.last_error
            now = aware(row.next_attempt_at)

        endpoint.status = 204
        stats = deliver_due(ledger, config, now=now)
        assert stats.sent == 1
        [row] = notices(ledger)
        assert row.state == "sent"
        assert row.attempts == 4
        assert len(endpoint.requests) == 4
        # Every attempt carries the same idempotency key.
        assert {headers["X-Bouncewise-Notice"] for headers, _ in endpoint.requests} == {
            str(row.id)}


def test_webhook_timeout_is_failure(database_url, endpoint, tmp_path):
    config = notify_config(database_url, webhook_url=endpoint.url, timeout=0.3)
    with open_ledger(config) as ledger:
        assert ingest(ledger, config, tmp_path / "in", spam_bounce()) == 1
        endpoint.delay = 2.0

        stats = deliver_due(ledger, config, now=datetime.now(UTC))

        assert stats.failed == 1
        [row] = notices(ledger)
        assert row.state == "pending"
        assert row.attempts == 1
        assert "timed out after 0.3 s" in row.last_error


def test_relay_rejection_is_retried(database_url, relay, tmp_path):
    config = notify_config(database_url, relay.port, retry_base=30.0, max_attempts=5)
    with open_ledger(config) as ledger:
        assert ingest(ledger, config, tmp_path / "in", spam_bounce()) == 1
        now = datetime.now(UTC)

        for attempt, reply in enumerate(("451 4.3.0 Try again later",
                                         "554 5.7.0 Relaying paused"), start=1):
            relay.set_data_reply(reply)
            stats = deliver_due(ledger, config, now=now)
            assert stats.failed == 1, reply
            [row] = notices(ledger)
            assert row.attempts == attempt
            assert reply in row.last_error
            now = aware(row.next_attempt_at)

        relay.set_data_reply(None)
        stats = deliver_due(ledger, config, now=now)
        assert stats.sent == 1
        [row] = notices(ledger)
        assert row.state == "sent"
        assert len(relay.messages()) == 1
        assert len(relay.messages(accepted_only=False)) == 3


def test_second_notice_within_interval_rate_limited(database_url, relay, endpoint, tmp_path):
    config = notify_config(database_url, relay.port, endpoint.url)
    with open_ledger(config) as ledger:
        queued = ingest(ledger, config, tmp_path / "in",
                        spam_bounce("bob@example.net"),
                        spam_bounce("carol@example.net", message_id="<other@sender.test>"))
        assert queued == 2

        rows = notices(ledger)
        assert [(row.channel, row.state) for row in rows] == [
            ("mail", "pending"), ("webhook", "pending"),
            ("mail", "rate-limited"), ("webhook", "rate-limited")]

        stats = deliver_due(ledger, config, now=datetime.now(UTC) + timedelta(days=1))
        assert stats.sent == 2
        [received] = relay.messages()
        assert "bob@example.net" in received.parsed()["Subject"]
        assert [body["recipient"] for body in endpoint.bodies()] == ["bob@example.net"]
        assert [row.state for row in notices(ledger)] == [
            "sent", "sent", "rate-limited", "rate-limited"]


def test_crashed_claim_sent_after_lease(database_url, relay, tmp_path):
    config = notify_config(database_url, relay.port)
    with open_ledger(config) as ledger:
        assert ingest(ledger, config, tmp_path / "in", spam_bounce()) == 1
        now = datetime.now(UTC)

        # A worker claims the notice and dies before it sends or records anything.
        claim = notify._claim_next(ledger, config, now, [])
        assert claim is not None
        lease = timedelta(seconds=notify._lease_seconds("mail", config))
        assert claim.lease_until == now + lease

        during = deliver_due(ledger, config, now=now + lease - timedelta(seconds=1))
        assert during.sent == 0
        assert relay.messages() == []

        after = deliver_due(ledger, config, now=now + lease)
        assert after.sent == 1
        [row] = notices(ledger)
        assert row.state == "sent"
        assert row.attempts == 1
        assert len(relay.messages()) == 1


def test_invalid_target_given_up_at_once(database_url, relay, tmp_path):
    config = notify_config(database_url, relay.port, max_attempts=8)
    with open_ledger(config) as ledger:
        assert ingest(ledger, config, tmp_path / "in", spam_bounce()) == 1
        with ledger.transaction() as session:
            row = session.execute(select(Notice)).scalar_one()
            row.target = "ann@sender.test\r\nBcc: eve@example.net"

        stats = deliver_due(ledger, config, now=datetime.now(UTC))

        assert stats.given_up == 1
        [row] = notices(ledger)
        assert row.state == "given-up"
        assert row.attempts == 1
        assert "not a plain ASCII mail address" in row.last_error
        assert relay.messages(accepted_only=False) == []


def test_concurrent_workers_send_each_once(database_url, relay, endpoint, tmp_path):
    config = notify_config(database_url, relay.port, endpoint.url)
    senders = [f"sender{number}@sender.test" for number in range(10)]
    with open_ledger(config) as ledger:
        queued = ingest(ledger, config, tmp_path / "in",
                        *[spam_bounce(sender=sender, message_id=f"<m{number}@sender.test>")
                          for number, sender in enumerate(senders)])
        assert queued == 2 * len(senders)
    endpoint.delay = ENDPOINT_DELAY
    now = datetime.now(UTC)

    # Each worker has its own Ledger and so its own connections, as separate processes do.
    barrier = threading.Barrier(2)
    results: list = []

    def worker() -> None:
        with open_ledger(config) as own:
            barrier.wait()
            results.append(deliver_due(own, config, now=now))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 2
    assert sum(stats.sent for stats in results) == 2 * len(senders)
    assert sum(stats.failed + stats.given_up for stats in results) == 0
    assert sorted(message.rcpt_tos[0] for message in relay.messages()) == sorted(senders)
    notice_ids = [body["notice_id"] for body in endpoint.bodies()]
    assert len(notice_ids) == len(set(notice_ids)) == len(senders)
    with open_ledger(config) as ledger:
        rows = notices(ledger)
    assert {row.state for row in rows} == {"sent"}
    assert {row.attempts for row in rows} == {1}


@pytest.mark.parametrize("category, subject_end, body_words", [
    ("virus", "was refused because of a virus", "found a virus in it"),
    ("sender-config", "was refused because of how it was sent", "SPF, DKIM, DMARC"),
    ("policy", "was refused", "the receiving mail server refused it"),
])
def test_mail_words_by_category(category, subject_end, body_words):
    config = config_for("sqlite://", notify={"interval": 1800.0, "mail": {
        "relay": f"{LOOPBACK}:2525", "sender": NOTICE_SENDER}})
    payload = {"recipient": "bob@example.net", "category": category, "reply": "",
               "advice": "", "subject": "", "original_message_id": ""}

    message = build_mail(3, "ann@sender.test", payload, config, datetime.now(UTC))

    assert message["Subject"] == f"Your message to bob@example.net {subject_end}"
    text = message.get_content()
    prose = " ".join(text.split())
    assert body_words in prose
    assert "at most one such notice per 30 minutes" in prose
    # Facts the bounce did not give are left out, not shown empty.
    assert "Server's reply" not in text
    assert "Your subject" not in text
