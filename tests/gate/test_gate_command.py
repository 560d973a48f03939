"""`bouncewise gate` as a user runs it: configuration checks, JSON log lines, metrics."""

from __future__ import annotations

import json
import smtplib
import subprocess
import threading
import urllib.request

import pytest

from bouncewise.gate.config import ConfigError, parse_config
from bouncewise.gate.scanners.builtin import GTUBE
from gaterun import BOUNCEWISE_COMMAND, GateProcess, free_port
from sink import SmtpSink

MESSAGE = b"From: ann@sender.test\r\nTo: bob@dest.test\r\nSubject: hi\r\n\r\nHello.\r\n"


def _gate(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BOUNCEWISE_COMMAND), "gate", "--listen", "127.0.0.1:1",
                           "--next-hop", "127.0.0.1:2", *arguments],
                          capture_output=True, text=True, timeout=60)


def test_check_config_reads_default_replies():
    completed = _gate("--check-config")

    assert completed.returncode == 0
    assert "read as spamdetected (spam-block): ok" in completed.stdout
    assert "read as virusdetected (virus): ok" in completed.stdout


@pytest.mark.parametrize("text, expected", [
    ("[gate]\nmax_recipent = 5\n", "unknown key 'max_recipent' in [gate]"),
    ("[gate]\nmax_recipients = -1\n", "[gate] max_recipients must be a positive number"),
    ('[replies]\nspam = "451 4.7.1 later"\n', "reply 'spam' must be permanent (5xx)"),
    ('[replies]\nspam = "554 5.9.9 Spam"\n', "uses 5.9.9, which is not a registered"),
    ('[replies]\nvirus = "554 5.7.1 {virus_name}"\n', "names an unknown field"),
    ('[[scanner]]\ntype = "spamassassin"\n', "unknown scanner type 'spamassassin'"),
    ("[gate\n", "invalid TOML"),
])
def test_bad_config_is_one_line_error(tmp_path, text, expected):
    config = tmp_path / "gate.toml"
    config.write_text(text)

    completed = _gate("--config", str(config), "--check-config")

    assert completed.returncode == 2
    assert expected in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert str(config) in completed.stderr


def test_missing_config_file_is_one_line_error(tmp_path):
    completed = _gate("--config", str(tmp_path / "absent.toml"))

    assert completed.returncode == 2
    assert "cannot read" in completed.stderr


def test_listen_without_port_is_usage_error():
    completed = subprocess.run([str(BOUNCEWISE_COMMAND), "gate", "--listen", "127.0.0.1",
                                "--next-hop", "127.0.0.1:2"], capture_output=True, text=True)

    assert completed.returncode == 2
    assert "expected HOST:PORT" in completed.stderr


def test_no_scanner_without_fail_open_is_refused():
    with pytest.raises(ConfigError, match="no scanner is configured"):
        parse_config({"scanner": []})


def test_json_log_and_metrics(tmp_path):
    metrics_port = free_port()
    with SmtpSink() as sink, GateProcess(sink.port, "", tmp_path, (
            "--log-format", "json", "--metrics", f"127.0.0.1:{metrics_port}")) as gate:
        with smtplib.SMTP("127.0.0.1", gate.port, timeout=30) as client:
            client.sendmail("ann@sender.test", ["bob@dest.test"], MESSAGE)
            with pytest.raises(smtplib.SMTPDataError):
                client.sendmail("ann@sender.test", ["bob@dest.test"], MESSAGE + GTUBE)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                    timeout=10) as response:
            metrics = response.read().decode()

    assert 'bouncewise_gate_decisions_total{verdict="accepted"} 1' in metrics
    assert 'bouncewise_gate_decisions_total{verdict="spam"} 1' in metrics
    decisions = [json.loads(line.removeprefix("bouncewise-gate: "))
                 for line in gate.log_lines() if '"verdict"' in line]
    assert [decision["verdict"] for decision in decisions] == ["accepted", "spam"]
    assert decisions[1]["findings"] == ["GTUBE"]


def _resident_megabytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise AssertionError(f"no VmRSS line for process {pid}")


def test_memory_is_freed_after_large_messages(tmp_path):
    message = b"Subject: large\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1000

    def client(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as connection:
            for _ in range(5):
                connection.sendmail("ann@sender.test", ["bob@dest.test"], message)

    def one_round(port: int) -> None:
        threads = [threading.Thread(target=client, args=(port,)) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    with SmtpSink(keep_data=False) as sink, GateProcess(sink.port, "", tmp_path) as gate:
        one_round(gate.port)
        after_first = _resident_megabytes(gate.process.pid)
        later = []
        for _ in range(5):
            one_round(gate.port)
            later.append(_resident_megabytes(gate.process.pid))

    # 100 messages of 1 MB over 20 connections per round: a leak of even one message in ten
    # would add 30 MB by the fourth round and more after. The allocator's own spikes of up to
    # about 10 MB in single rounds come and go, so the lowest of the last three rounds counts.
    assert len(sink.messages()) == 600
    assert min(later[-3:]) - after_first < 15
