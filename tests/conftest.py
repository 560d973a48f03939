"""Shared helpers: the shipped examples, a small DSN builder, and a runner for the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
HOSTILE = Path(__file__).resolve().parent / "fixtures" / "hostile"


def postfix_dsn(recipient: str = "j.doe@example.org", status: str = "5.1.1",
                reply: str = "550 5.1.1 <j.doe@example.org>: Recipient address rejected: "
                             "User unknown in virtual mailbox table",
                boundary: str = "B0UND.1715670764/mail.example.com") -> bytes:
    """Build a small Postfix-shaped DSN for one recipient, as bytes with LF line endings."""
    return f"""\
Return-Path: <>
From: MAILER-DAEMON@mail.example.com (Mail Delivery System)
To: newsletter@example.com
Subject: Undelivered Mail Returned to Sender
Date: Tue, 14 May 2024 09:12:44 +0200
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{boundary}"

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.example.com.

<{recipient}>: host mx1.example.org[192.0.2.25] said: {reply}
    (in reply to RCPT TO command)

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.com

Final-Recipient: rfc822; {recipient}
Action: failed
Status: {status}
Remote-MTA: dns; mx1.example.org
Diagnostic-Code: smtp; {reply}

--{boundary}
Content-Type: text/rfc822-headers

From: Example News <newsletter@example.com>
To: {recipient}
Subject: Your May update
Message-ID: <may-update-7731@example.com>

--{boundary}--
""".encode()


def run_cli(*args: str, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `python -m bouncewise ARGS` with the test interpreter and return the finished process."""
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    env.pop("BOUNCEWISE_TRACEBACK", None)
    return subprocess.run([sys.executable, "-m", "bouncewise", *args], input=stdin,
                          capture_output=True, timeout=timeout, env=env, check=False)


@pytest.fixture
def examples() -> Path:
    """The example bounces that the project ships."""
    return EXAMPLES
