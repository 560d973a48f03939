"""Delivering queued notices: mail to the sender of refused mail, and signed JSON webhooks.

`deliver_due` takes the due notices one at a time, oldest first, in three steps:

1. Claim: in one short transaction, select the notice (on PostgreSQL with
   SELECT ... FOR UPDATE SKIP LOCKED, so concurrent workers skip a row being claimed instead of
   waiting for it) and move its next_attempt_at forward by a lease. Other workers do not see
   the notice as due until the lease ends. No transaction stays open during the send.
2. Send, by mail through the relay or by HTTP POST to the webhook.
3. Record the outcome in a second short transaction: "sent", or a failed attempt with its
   error and the time of the next attempt, or "given-up" after `max_attempts`.

A worker that dies after its claim leaves the notice "pending", and the notice is due again
when the lease ends, so a crash delays the notice but does not lose it. If the worker dies
after the send and before step 3, the notice is sent again, so the recipient may get one
duplicate. Webhook receivers can drop such a duplicate by its X-Bouncewise-Notice header.

The lease lasts LEASE_TIMEOUTS times the channel's timeout plus LEASE_MARGIN_SECONDS. A peer
that responds at every step just within the timeout can make a send outlast the lease. Another
worker may then send the same notice, which gives a duplicate but never a loss.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import re
import smtplib
import textwrap
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from http.client import HTTPMessage
from typing import IO, Any

from sqlalchemy import select

from bouncewise.ledger.config import LedgerConfig
from bouncewise.ledger.models import Notice
from bouncewise.ledger.store import Ledger

__all__ = ["DeliveryStats", "DeliveryError", "InvalidNotice", "deliver_due", "build_mail",
           "webhook_body", "sign_body", "verify_signature", "SIGNATURE_HEADER",
           "NOTICE_HEADER"]

LOGGER = logging.getLogger("bouncewise.ledger")

# Waits on the peer that one send can take, each bounded by the channel's timeout. An SMTP
# session has eight: connect, greeting, EHLO, MAIL, RCPT, DATA, end of data and QUIT.
LEASE_TIMEOUTS = 8

# Seconds added to every lease, for the database steps around the send.
LEASE_MARGIN_SECONDS = 60.0

# Upper bound of the wait between two attempts, for large max_attempts settings.
MAX_RETRY_DELAY_SECONDS = 86400.0

# Characters of an error kept in last_error and in the log.
ERROR_LENGTH = 500

# Bytes of a failing webhook response body quoted in the error.
RESPONSE_EXCERPT_BYTES = 200

# Columns of the prose in a mail notice, under the 78 that RFC 5322 recommends.
BODY_WIDTH = 72

SIGNATURE_HEADER = "X-Bouncewise-Signature"
NOTICE_HEADER = "X-Bouncewise-Notice"
SIGNATURE_PREFIX = "sha256="

# Subject endings and first sentences of a mail notice, by category.
_CATEGORY_WORDS = {
    "spam-block": ("was refused as spam",
                   "the receiving mail server judged it to be spam and refused it"),
    "virus": ("was refused because of a virus",
              "the receiving mail server found a virus in it and refused it"),
    "sender-config": ("was refused because of how it was sent",
                      "the receiving mail server did not accept how it was sent: the sending "
                      "server, its DNS records or its authentication (SPF, DKIM, DMARC) did "
                      "not meet that server's rules"),
}
_DEFAULT_WORDS = ("was refused", "the receiving mail server refused it")

# An address without spaces, angle brackets or other characters that could end the header or
# the SMTP command it is written into.
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\\\"@]+@[^\s<>()\[\],;:\\\"@]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass
class DeliveryStats:
    """Counts of one `deliver_due` run."""

    sent: int = 0
    # Failed attempts whose notice stays pending for a retry.
    failed: int = 0
    # Notices given up in this run, after their last failed attempt.
    given_up: int = 0


class DeliveryError(Exception):
    """A failed attempt, with a one-line message that names the peer and the cause."""


class InvalidNotice(DeliveryError):
    """A notice that no retry can deliver, such as one whose target is not a valid address."""


@dataclass(frozen=True, slots=True)
class _Claim:
    """A notice claimed by this worker until `lease_until`."""

    id: int
    channel: str
    target: str
    payload: dict[str, Any]
    attempts: int
    lease_until: datetime


def deliver_due(ledger: Ledger, config: LedgerConfig, now: datetime | None = None,
                limit: int = 100) -> DeliveryStats:
    """Send up to `limit` due notices, oldest first, and record each outcome.

    `now` fixes the clock for the whole run, as tests do. Without it, each step reads the
    current time. Each notice gets at most one attempt per run. Raises LedgerUnavailable when
    the database fails, and a notice claimed at that moment is retried after its lease ends.
    """
    clock = _fixed_clock(now) if now is not None else _current_time
    stats = DeliveryStats()
    attempted: list[int] = []

    while len(attempted) < limit:
        claim = _claim_next(ledger, config, clock(), attempted)
        if claim is None:
            break
        attempted.append(claim.id)

        error: DeliveryError | None = None
        try:
            _send(claim, config, clock())
        except DeliveryError as failure:
            error = failure

        state = _record_outcome(ledger, config, claim, error, clock())
        if error is None:
            stats.sent += 1
        elif state == "given-up":
            stats.given_up += 1
        else:
            stats.failed += 1
    return stats


# Claiming and recording.

def _claim_next(ledger: Ledger, config: LedgerConfig, now: datetime,
                skip: list[int]) -> _Claim | None:
    """Claim the oldest due notice not in `skip` by moving its next attempt past a lease."""
    query = (select(Notice)
             .where(Notice.state == "pending", Notice.next_attempt_at <= now)
             .order_by(Notice.created_at, Notice.id)
             .limit(1))
    if skip:
        query = query.where(Notice.id.not_in(skip))
    if ledger.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)

    # SQLite needs no row lock: the ledger begins its transactions with BEGIN IMMEDIATE, so
    # one claimer at a time reads and updates.
    with ledger.transaction() as session:
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            return None
        lease_until = now + timedelta(seconds=_lease_seconds(row.channel, config))
        row.next_attempt_at = lease_until
        return _Claim(id=row.id, channel=row.channel, target=row.target,
                      payload=dict(row.payload or {}), attempts=row.attempts,
                      lease_until=lease_until)


def _lease_seconds(channel: str, config: LedgerConfig) -> float:
    timeout = config.mail.timeout if channel == "mail" else config.webhook.timeout
    return LEASE_TIMEOUTS * timeout + LEASE_MARGIN_SECONDS


def _record_outcome(ledger: Ledger, config: LedgerConfig, claim: _Claim,
                    error: DeliveryError | None, now: datetime) -> str:
    """Store the outcome of one attempt, log it once committed, and return the notice's state."""
    note = ""
    with ledger.transaction() as session:
        row = session.get(Notice, claim.id, with_for_update=True)
        if row is None:
            state, attempts, note = "deleted", claim.attempts + 1, "deleted during the send"
        elif error is None and row.state != "sent":
            # A delivered notice is recorded as sent, whatever another worker did meanwhile.
            state, attempts = _store_outcome(config, row, error, now), row.attempts
        elif row.state != "pending" or _aware(row.next_attempt_at) != claim.lease_until:
            # The lease ended during the send and another worker claimed the notice, so that
            # worker records the outcome.
            state, attempts = row.state, row.attempts
            note = "claimed again by another worker"
        else:
            state, attempts = _store_outcome(config, row, error, now), row.attempts

    # A notice given up is worth an operator's look, so its last attempt is a warning.
    level = logging.WARNING if state == "given-up" and not note else logging.INFO
    _log_attempt(level, claim, state, attempts, error, note)
    return state


def _store_outcome(config: LedgerConfig, row: Notice, error: DeliveryError | None,
                   now: datetime) -> str:
    """Update `row` for a sent notice or a failed attempt, and return its new state."""
    row.attempts += 1

    if error is None:
        row.state = "sent"
        row.sent_at = now
        row.last_error = ""
        return row.state

    row.last_error = _one_line(str(error), ERROR_LENGTH)
    if isinstance(error, InvalidNotice) or row.attempts >= max(1, config.notify.max_attempts):
        row.state = "given-up"
        return row.state

    row.next_attempt_at = now + timedelta(seconds=_retry_delay(config, row.attempts))
    return row.state


def _retry_delay(config: LedgerConfig, attempts: int) -> float:
    """Return the seconds to wait after failed attempt number `attempts`: base, 2 * base, ..."""
    # The exponent is capped so that a large max_attempts cannot overflow the float.
    delay = config.notify.retry_base * 2.0 ** min(attempts - 1, 64)
    return min(delay, MAX_RETRY_DELAY_SECONDS)


def _log_attempt(level: int, claim: _Claim, state: str, attempts: int,
                 error: DeliveryError | None, note: str = "") -> None:
    text = _one_line(str(error), ERROR_LENGTH).replace('"', "'") if error else ""
    LOGGER.log(level, 'notify: notice=%d channel=%s target=<%s> state=%s attempts=%d '
               'error="%s"%s', claim.id, claim.channel, _one_line(claim.target, 320), state,
               attempts, text, f' note="{note}"' if note else "")


# Sending.

def _send(claim: _Claim, config: LedgerConfig, now: datetime) -> None:
    if claim.channel == "mail":
        _send_mail(claim, config, now)
    elif claim.channel == "webhook":
        _post_webhook(claim, config)
    else:
        raise InvalidNotice(f"unknown channel {claim.channel!r}")


def _send_mail(claim: _Claim, config: LedgerConfig, now: datetime) -> None:
    """Send the notice through the relay with the null envelope sender (MAIL FROM:<>)."""
    relay = config.mail.relay
    if not relay:
        raise DeliveryError("no relay configured: set [notify.mail] relay to HOST:PORT")
    host, port = _relay_address(relay)
    message = build_mail(claim.id, claim.target, claim.payload, config, now)
    data = message.as_bytes(policy=SMTP_POLICY)

    # The EHLO name is the notice sender's domain, so that smtplib does not look up this
    # host's name in DNS.
    helo = _domain(config.mail.sender)
    try:
        with smtplib.SMTP(host, port, local_hostname=helo,
                          timeout=config.mail.timeout) as client:
            # An empty reverse path: a notice that cannot be delivered must not bounce back
            # and start a loop.
            client.sendmail("", [claim.target], data)
    except smtplib.SMTPRecipientsRefused as refused:
        code, text = next(iter(refused.recipients.values()))
        raise DeliveryError(f"relay {relay} rejected RCPT TO:<{claim.target}>: "
                            f"{code} {_reply_text(text)}") from refused
    except smtplib.SMTPResponseException as failure:
        raise DeliveryError(f"relay {relay} replied {failure.smtp_code} "
                            f"{_reply_text(failure.smtp_error)}") from failure
    except (smtplib.SMTPException, OSError) as failure:
        raise DeliveryError(f"relay {relay}: {_network_cause(failure, config.mail.timeout)}") \
            from failure


def build_mail(notice_id: int, target: str, payload: dict[str, Any], config: LedgerConfig,
               now: datetime) -> EmailMessage:
    """Build the plain-text notice to `target` that their message was refused, and why.

    Raises InvalidNotice when `target` is not a plain ASCII address.
    """
    _check_address(target)
    recipient = _one_line(str(payload.get("recipient", "")), 320) or "a recipient"
    ending, _ = _CATEGORY_WORDS.get(str(payload.get("category", "")), _DEFAULT_WORDS)

    message = EmailMessage()
    try:
        message["From"] = config.mail.sender
    except ValueError as error:
        raise DeliveryError(f"invalid [notify.mail] sender {config.mail.sender!r}: "
                            f"{error}") from error
    message["To"] = target
    message["Subject"] = f"Your message to {recipient} {ending}"
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = make_msgid(idstring=f"notice.{notice_id}",
                                       domain=_domain(config.mail.sender))
    # RFC 3834: marks the notice as machine-made, so that auto-responders do not reply to it.
    message["Auto-Submitted"] = "auto-generated"
    message[NOTICE_HEADER] = str(notice_id)
    message.set_content(_mail_body(recipient, payload, config))
    return message


def _mail_body(recipient: str, payload: dict[str, Any], config: LedgerConfig) -> str:
    """Return the notice text: prose wrapped at BODY_WIDTH, and the facts as the bounce gave
    them, so that the server's reply stays verbatim."""
    _, explanation = _CATEGORY_WORDS.get(str(payload.get("category", "")), _DEFAULT_WORDS)
    lines = [_wrap(f"Your message to {recipient} was not delivered: {explanation}. "
                   f"The recipient has not received it."), ""]

    facts = [("Recipient", recipient),
             ("When", _when(str(payload.get("occurred_at", "")))),
             ("Receiving server", str(payload.get("remote_mta", ""))),
             ("Server's reply", str(payload.get("reply", ""))),
             ("Your subject", str(payload.get("subject", ""))),
             ("Your Message-ID", str(payload.get("original_message_id", "")))]
    for label, value in facts:
        if value:
            # Continuation lines of a multi-line reply are indented under the first.
            value = value.replace("\r\n", "\n").replace("\n", "\n" + " " * 19)
            lines.append(f"{label + ':':<18} {value}")

    advice = str(payload.get("advice", ""))
    if advice:
        lines += ["", _wrap(f"What to do: {advice}")]

    closing = f"This notice was sent automatically by {config.mail.sender}."
    if config.notify.interval > 0:
        closing += (f" You get at most one such notice per "
                    f"{_period_words(config.notify.interval)}. Later refusals in that time "
                    f"are recorded but not sent to you.")
    lines += ["", _wrap(closing)]
    return "\n".join(lines) + "\n"


def _wrap(paragraph: str) -> str:
    return textwrap.fill(paragraph, width=BODY_WIDTH, break_long_words=False,
                         break_on_hyphens=False)


def webhook_body(notice_id: int, channel: str, target: str, payload: dict[str, Any]) -> bytes:
    """Return the JSON document POSTed for a notice: its payload with notice_id, channel and
    target, as compact UTF-8 with sorted keys."""
    document = {**payload, "notice_id": notice_id, "channel": channel, "target": target}
    return json.dumps(document, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


def sign_body(body: bytes, secret: str) -> str:
    """Return the X-Bouncewise-Signature value of `body`: "sha256=" and the hex HMAC-SHA256."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(body: bytes, header: str, secret: str) -> bool:
    """Return True when `header` is the X-Bouncewise-Signature of `body` under `secret`.

    Check the raw request body, before any JSON parsing, because the signature covers the exact
    bytes. The comparison takes the same time wherever the values differ, so that an attacker
    cannot find a valid signature by timing. An empty secret verifies nothing. The signature
    does not expire, so receivers should drop a replayed notice by its X-Bouncewise-Notice id.
    This function needs only hashlib and hmac and can be copied into an application:

        if not verify_signature(request.body, request.headers.get(
                "X-Bouncewise-Signature", ""), WEBHOOK_SECRET):
            return 401
    """
    if not secret or not header:
        return False
    expected = "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"),
                               header.strip().lower().encode("utf-8", "replace"))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Treat a redirect as a response outside 2xx, since urllib would resend a POST as a GET."""

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: HTTPMessage, newurl: str) -> urllib.request.Request | None:
        return None


# Environment proxies (http_proxy, https_proxy, no_proxy) apply as for any urllib request.
_OPENER = urllib.request.build_opener(_NoRedirect)


def _post_webhook(claim: _Claim, config: LedgerConfig) -> None:
    """POST the notice. A response outside 2xx, a timeout or a connection error is a failure."""
    url = config.webhook.url
    if not url:
        raise DeliveryError("no webhook configured: set [notify.webhook] url")
    safe_url = _url_for_log(url)

    body = webhook_body(claim.id, claim.channel, claim.target, claim.payload)
    headers = {"Content-Type": "application/json", NOTICE_HEADER: str(claim.id),
               "User-Agent": "bouncewise-notify"}
    if config.webhook.secret:
        headers[SIGNATURE_HEADER] = sign_body(body, config.webhook.secret)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")

    try:
        with _OPENER.open(request, timeout=config.webhook.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as response_error:
        raise DeliveryError(f"webhook {safe_url}: HTTP {response_error.code} "
                            f"{response_error.reason}{_response_excerpt(response_error)}") \
            from response_error
    except urllib.error.URLError as failure:
        cause = failure.reason if isinstance(failure.reason, BaseException) else failure
        raise DeliveryError(f"webhook {safe_url}: "
                            f"{_network_cause(cause, config.webhook.timeout)}") from failure
    except (OSError, http.client.HTTPException, ValueError) as failure:
        raise DeliveryError(f"webhook {safe_url}: "
                            f"{_network_cause(failure, config.webhook.timeout)}") from failure
    if not 200 <= status < 300:
        raise DeliveryError(f"webhook {safe_url}: HTTP {status}")


def _response_excerpt(response_error: urllib.error.HTTPError) -> str:
    try:
        text = response_error.read(RESPONSE_EXCERPT_BYTES).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""
    text = _one_line(text, RESPONSE_EXCERPT_BYTES)
    return f": {text}" if text else ""


# Small helpers.

def _fixed_clock(now: datetime) -> Callable[[], datetime]:
    moment = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    return lambda: moment


def _current_time() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """Return `moment` with UTC attached where the database returned it without a zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _check_address(target: str) -> None:
    if not target.isascii() or not _ADDRESS.fullmatch(target):
        # NOTE: internationalized addresses would need SMTPUTF8 from the relay. Such notices
        # are given up and recorded with this error.
        raise InvalidNotice(f"target {target!r} is not a plain ASCII mail address")


def _relay_address(relay: str) -> tuple[str, int]:
    """Split "HOST:PORT" or "[IPv6]:PORT"."""
    host, _, port = relay.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DeliveryError(f"invalid [notify.mail] relay {relay!r}: expected HOST:PORT")
    return host, int(port)


def _domain(address: str) -> str:
    domain = address.rpartition("@")[2].strip().strip(">")
    return domain if domain and _ADDRESS.fullmatch(f"x@{domain}") else "localhost"


def _url_for_log(url: str) -> str:
    """Return the URL without user, password and query, which may carry credentials."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path}"


def _network_cause(error: BaseException, timeout: float) -> str:
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout:g} s"
    text = _one_line(str(error), ERROR_LENGTH)
    return text or type(error).__name__


def _reply_text(text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return _one_line(text, ERROR_LENGTH)


def _one_line(text: str, length: int) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())[:length]


def _when(occurred_at: str) -> str:
    try:
        moment = datetime.fromisoformat(occurred_at.replace("Z", "+00:00"))
    except ValueError:
        return occurred_at
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _period_words(seconds: float) -> str:
    """Return "hour", "2 hours", "30 minutes" or "90 seconds", to follow "per"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds:g} seconds"
