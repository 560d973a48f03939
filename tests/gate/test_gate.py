"""The gate's SMTP behaviour, with the built-in scanner and a next hop on loopback.

Each test runs the gate in this process and talks to it with smtplib, as a client would.
"""

from __future__ import annotations

import asyncio
import base64
import json
import smtplib
import socket
import time
from dataclasses import dataclass, replace

import pytest

from bouncewise import explain
from bouncewise.gate.config import parse_config
from bouncewise.gate.scanners import CLEAN, ScanResult
from bouncewise.gate.scanners.builtin import EICAR, GTUBE
from gaterun import GateThread
from sink import SmtpSink, free_port

MESSAGE = (b"From: Ann <ann@sender.test>\r\nTo: bob@dest.test\r\nSubject: hello\r\n"
           b"Message-ID: <1@sender.test>\r\n\r\nA plain message.\r\n.leading dot\r\n")


def _message(body: bytes) -> bytes:
    return b"From: ann@sender.test\r\nTo: bob@dest.test\r\nSubject: test\r\n\r\n" + body + b"\r\n"


def _eicar_attachment() -> bytes:
    encoded = base64.encodebytes(EICAR)
    return (b"From: ann@sender.test\r\nTo: bob@dest.test\r\nSubject: file\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
            b"See the file.\r\n--b\r\nContent-Type: application/octet-stream; name=test.com\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded.replace(b"\n", b"\r\n")
            + b"--b--\r\n")


def _send(port: int, message: bytes, recipients=("bob@dest.test",)) -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail("ann@sender.test", list(recipients), message)


@pytest.fixture
def sink():
    with SmtpSink() as next_hop:
        yield next_hop


def test_clean_message_arrives_intact(sink):
    with GateThread((sink.host, sink.port)) as gate:
        refused = _send(gate.port, MESSAGE)

    assert refused == {}
    arrived = sink.messages()[0]
    assert arrived.mail_from == "ann@sender.test"
    assert arrived.rcpt_tos == ("bob@dest.test",)
    assert arrived.data == MESSAGE


def test_gtube_refused_as_spam(sink):
    with GateThread((sink.host, sink.port)) as gate:
        with pytest.raises(smtplib.SMTPDataError) as refusal:
            _send(gate.port, _message(b"Buy now " + GTUBE))

    assert refusal.value.smtp_code == 554
    text = refusal.value.smtp_error.decode()
    assert text.startswith("5.7.1 Message rejected as spam")
    assert sink.messages(accepted_only=False) == []
    assert explain(f"554 {text}").reason == "spamdetected"


def test_eicar_attachment_refused_as_virus(sink):
    with GateThread((sink.host, sink.port)) as gate:
        with pytest.raises(smtplib.SMTPDataError) as refusal:
            _send(gate.port, _eicar_attachment())

    text = refusal.value.smtp_error.decode()
    assert refusal.value.smtp_code == 554
    assert "Eicar-Test-Signature" in text
    assert explain(f"554 {text}").reason == "virusdetected"
    assert sink.messages(accepted_only=False) == []


def test_refusal_reference_is_in_log_line(sink, caplog):
    with GateThread((sink.host, sink.port)) as gate, caplog.at_level("INFO", "bouncewise.gate"):
        with pytest.raises(smtplib.SMTPDataError) as refusal:
            _send(gate.port, _message(GTUBE))

    reference = refusal.value.smtp_error.decode().rsplit("ref ", 1)[1].rstrip(")")
    lines = [record.getMessage() for record in caplog.records]
    line = next(line for line in lines if line.startswith(reference + ":"))
    assert "verdict=spam" in line
    assert "from=<ann@sender.test>" in line
    assert "to=<bob@dest.test>" in line
    assert f'(ref {reference})"' in line


def test_next_hop_recipient_refusal_passes_through(sink):
    sink.reject_recipient("gone@dest.test", "550 5.1.1 <gone@dest.test>: Recipient address rejected")
    with GateThread((sink.host, sink.port)) as gate:
        refused = _send(gate.port, MESSAGE, ("bob@dest.test", "gone@dest.test"))

    assert refused == {"gone@dest.test": (550, b"5.1.1 <gone@dest.test>: Recipient address "
                                                b"rejected")}
    assert sink.messages()[0].rcpt_tos == ("bob@dest.test",)


def test_next_hop_data_refusal_passes_through(sink):
    sink.set_data_reply("554 5.6.0 Next hop does not like this")
    with GateThread((sink.host, sink.port)) as gate:
        with pytest.raises(smtplib.SMTPDataError) as refusal:
            _send(gate.port, MESSAGE)

    assert refusal.value.smtp_code == 554
    assert refusal.value.smtp_error == b"5.6.0 Next hop does not like this"


def test_next_hop_down_is_temporary(sink):
    with GateThread(("127.0.0.1", free_port())) as gate:
        with pytest.raises(smtplib.SMTPSenderRefused) as refusal:
            _send(gate.port, MESSAGE)

    assert refusal.value.smtp_code == 451
    assert refusal.value.smtp_error.startswith(b"4.4.1 ")


def test_next_hop_gone_mid_message_is_temporary(sink):
    sink.drop_at_data = True
    with GateThread((sink.host, sink.port)) as gate:
        with pytest.raises(smtplib.SMTPDataError) as refusal:
            _send(gate.port, MESSAGE)
        # The gate stays up for the next client.
        sink.drop_at_data = False
        assert _send(gate.port, MESSAGE) == {}

    assert refusal.value.smtp_code == 451
    assert len(sink.messages()) == 1


@dataclass(frozen=True)
class _HangingScanner:
    """A scanner that never returns, as a hung scanning service does."""

    name: str = "hanging"
    timeout: float = 0.5

    async def scan(self, message: bytes) -> ScanResult:
        await asyncio.sleep(3600)
        return ScanResult(CLEAN, self.name)


def test_hanging_scanner_gives_temporary_failure(sink):
    config = replace(parse_config({}), scanners=(_HangingScanner(),))
    with GateThread((sink.host, sink.port), config) as gate:
        with pytest.raises(smtplib.SMTPDataError) as refusal:
            _send(gate.port, MESSAGE)

    assert refusal.value.smtp_code == 451
    assert refusal.value.smtp_error.startswith(b"4.3.0 ")
    assert sink.messages(accepted_only=False) == []


def test_hanging_scanner_with_fail_open_delivers(sink):
    config = replace(parse_config({"gate": {"fail_open": True}}), scanners=(_HangingScanner(),))
    with GateThread((sink.host, sink.port), config) as gate:
        assert _send(gate.port, MESSAGE) == {}

    assert len(sink.messages()) == 1


def test_virus_outweighs_failed_scanner(sink):
    config = parse_config({})
    config = replace(config, scanners=config.scanners + (_HangingScanner(),))
    with GateThread((sink.host, sink.port), config) as gate:
        with pytest.raises(smtplib.SMTPDataError) as refusal:
            _send(gate.port, _eicar_attachment())

    assert refusal.value.smtp_code == 554


def test_message_over_size_limit_refused(sink):
    with GateThread((sink.host, sink.port), max_message_size=10_000) as gate:
        with smtplib.SMTP("127.0.0.1", gate.port, timeout=30) as client:
            client.ehlo()
            assert client.esmtp_features["size"] == "10000"
            # Without SIZE the limit shows only once the data has arrived.
            client.esmtp_features.pop("size")
            with pytest.raises(smtplib.SMTPDataError) as refusal:
                client.sendmail("ann@sender.test", ["bob@dest.test"],
                                _message(b"a line of text\r\n" * 1000))
            # The connection stays usable for the next message.
            assert client.sendmail("ann@sender.test", ["bob@dest.test"], MESSAGE) == {}

    assert refusal.value.smtp_code == 552
    assert refusal.value.smtp_error.startswith(b"5.3.4 Message size exceeds the limit of 10000")
    assert len(sink.messages()) == 1


def test_ten_thousand_recipients(sink):
    recipients = [f"user{number}@dest.test" for number in range(10_000)]
    with GateThread((sink.host, sink.port)) as gate:
        refused = _send(gate.port, MESSAGE, recipients)

    assert len(refused) == 9_000
    assert refused["user1000@dest.test"][0] == 452
    assert len(sink.messages()[0].rcpt_tos) == 1000


def test_client_gone_mid_data(sink, caplog):
    with GateThread((sink.host, sink.port)) as gate, caplog.at_level("INFO", "bouncewise.gate"):
        with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as raw:
            reader = raw.makefile("rb")
            reader.readline()
            for command in (b"EHLO client.test", b"MAIL FROM:<ann@sender.test>",
                            b"RCPT TO:<bob@dest.test>", b"DATA"):
                raw.sendall(command + b"\r\n")
                while (line := reader.readline())[3:4] == b"-":
                    pass
            raw.sendall(b"Subject: half\r\n\r\nThe client stops here")
            reader.close()
        _wait_for(lambda: gate.connections() == 0)

        assert _send(gate.port, MESSAGE) == {}

    assert len(sink.messages()) == 1
    assert any("verdict=client-gone" in record.getMessage() for record in caplog.records)


def test_connections_over_limit_get_421(sink):
    with GateThread((sink.host, sink.port), max_connections=2) as gate:
        first = smtplib.SMTP("127.0.0.1", gate.port, timeout=10)
        second = smtplib.SMTP("127.0.0.1", gate.port, timeout=10)
        with pytest.raises(smtplib.SMTPConnectError) as refusal:
            smtplib.SMTP("127.0.0.1", gate.port, timeout=10)
        first.quit()
        second.quit()

    assert refusal.value.smtp_code == 421


def test_two_hundred_slow_clients(sink):
    async def slow_client(port: int, number: int) -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        body = (f"Subject: slow {number}\r\n\r\n" + "line of text\r\n" * 200 + ".\r\n").encode()
        replies = []
        for command in (b"HELO slow.test", f"MAIL FROM:<c{number}@sender.test>".encode(),
                        b"RCPT TO:<bob@dest.test>", b"DATA"):
            writer.write(command + b"\r\n")
            await asyncio.sleep(0.2)
            replies.append(await reader.readline())
        for start in range(0, len(body), 1000):
            writer.write(body[start:start + 1000])
            await asyncio.sleep(0.05)
        replies.append(await reader.readline())
        writer.write(b"QUIT\r\n")
        await reader.readline()
        writer.close()
        return replies[-1].decode()

    async def all_clients(port: int) -> list[str]:
        return await asyncio.gather(*(slow_client(port, number) for number in range(200)))

    with GateThread((sink.host, sink.port)) as gate:
        replies = asyncio.run(all_clients(gate.port))
        _wait_for(lambda: gate.connections() == 0)

    assert all(reply.startswith("250 ") for reply in replies)
    assert len(sink.messages()) == 200


def test_decisions_file_has_one_json_line_each(sink, tmp_path):
    decisions = tmp_path / "decisions.jsonl"
    with GateThread((sink.host, sink.port), decisions_file=str(decisions)) as gate:
        _send(gate.port, MESSAGE)
        with pytest.raises(smtplib.SMTPDataError):
            _send(gate.port, _message(GTUBE))

    rows = [json.loads(line) for line in decisions.read_text().splitlines()]
    assert [row["verdict"] for row in rows] == ["accepted", "spam"]
    assert rows[1]["sender"] == "ann@sender.test"
    assert rows[1]["recipients"] == ["bob@dest.test"]
    assert rows[1]["reply"].endswith(f"(ref {rows[1]['ref']})")
    assert rows[1]["time"].endswith("Z")


def test_xforward_passes_to_next_hop(sink):
    with GateThread((sink.host, sink.port)) as gate:
        with smtplib.SMTP("127.0.0.1", gate.port, timeout=10) as client:
            client.ehlo()
            assert client.has_extn("xforward")
            assert client.docmd("XFORWARD", "NAME=mx.client.test ADDR=203.0.113.5")[0] == 250
            client.sendmail("ann@sender.test", ["bob@dest.test"], MESSAGE)

    assert sink.xforward == ["NAME=mx.client.test ADDR=203.0.113.5"]


def test_gate_is_no_open_relay(sink):
    # Whatever the recipient's domain, mail goes to the one next hop, never elsewhere.
    with GateThread((sink.host, sink.port)) as gate:
        _send(gate.port, MESSAGE, ("someone@elsewhere.example",))

    assert sink.messages()[0].rcpt_tos == ("someone@elsewhere.example",)


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_trusted_verdict_header_refuses(sink):
    config = parse_config({"gate": {"trusted_verdict_header": "X-Spam-Flag"}})
    flagged = b"X-Spam-Flag: YES\r\n" + MESSAGE
    with GateThread((sink.host, sink.port), config) as gate:
        with pytest.raises(smtplib.SMTPDataError) as refusal:
            _send(gate.port, flagged)
        assert _send(gate.port, b"X-Spam-Flag: NO\r\n" + MESSAGE) == {}

    assert refusal.value.smtp_code == 554
    assert len(sink.messages()) == 1


def test_null_sender_bounce_is_relayed(sink):
    with GateThread((sink.host, sink.port)) as gate:
        with smtplib.SMTP("127.0.0.1", gate.port, timeout=30) as client:
            assert client.sendmail("<>", ["bob@dest.test"], MESSAGE) == {}

    assert sink.messages()[0].mail_from == ""


def test_dsn_parameters_pass_through(sink):
    with GateThread((sink.host, sink.port)) as gate:
        with smtplib.SMTP("127.0.0.1", gate.port, timeout=30) as client:
            client.ehlo()
            assert client.has_extn("dsn")
            refused = client.sendmail("ann@sender.test", ["bob@dest.test"], MESSAGE,
                                      mail_options=["RET=HDRS", "ENVID=Ab12"],
                                      rcpt_options=["NOTIFY=SUCCESS,FAILURE",
                                                    "ORCPT=rfc822;Bob@dest.test"])

    assert refused == {}
    assert len(sink.messages()) == 1


def test_line_too_long_is_refused_with_its_reply(sink, caplog):
    with GateThread((sink.host, sink.port), max_line_length=2000) as gate, \
            caplog.at_level("INFO", "bouncewise.gate"):
        with pytest.raises(smtplib.SMTPDataError) as refusal:
            _send(gate.port, _message(b"x" * 5000))

    assert refusal.value.smtp_code == 554
    assert refusal.value.smtp_error.startswith(b"5.6.0 Message has a line longer than 2000")
    assert any("verdict=line-too-long" in record.getMessage() for record in caplog.records)


def test_xforward_refused_from_other_clients(sink):
    with GateThread((sink.host, sink.port), xforward_hosts=("192.0.2.1",)) as gate:
        with smtplib.SMTP("127.0.0.1", gate.port, timeout=10) as client:
            client.ehlo()
            assert not client.has_extn("xforward")
            assert client.docmd("XFORWARD", "ADDR=198.51.100.7")[0] == 550


def test_log_line_escapes_client_chosen_text(sink, caplog):
    sneaky = '"x verdict=accepted"@sender.test'
    with GateThread((sink.host, sink.port)) as gate, caplog.at_level("INFO", "bouncewise.gate"):
        with smtplib.SMTP("127.0.0.1", gate.port, timeout=30) as client:
            with pytest.raises(smtplib.SMTPDataError):
                client.sendmail(sneaky, ["bob@dest.test"], _message(GTUBE))

    line = next(record.getMessage() for record in caplog.records
                if "verdict=spam" in record.getMessage())
    assert line.count("verdict=") == 1
    assert "from=<\\x22x\\x20verdict\\x3daccepted\\x22@sender.test>" in line


def test_slow_steady_data_is_not_cut_off(sink):
    async def steady_client(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        for command in (b"HELO slow.test", b"MAIL FROM:<ann@sender.test>",
                        b"RCPT TO:<bob@dest.test>", b"DATA"):
            writer.write(command + b"\r\n")
            await reader.readline()
        writer.write(b"Subject: steady\r\n\r\n")
        # Three seconds of data, one line every 0.3 s, against an idle timeout of one second.
        for _ in range(10):
            writer.write(b"one more line\r\n")
            await asyncio.sleep(0.3)
        writer.write(b".\r\n")
        reply = await reader.readline()
        writer.close()
        return reply

    with GateThread((sink.host, sink.port), client_timeout=1.0) as gate:
        reply = asyncio.run(steady_client(gate.port))

    assert reply.startswith(b"250 ")
