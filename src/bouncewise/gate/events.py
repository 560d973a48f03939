"""The gate's record of each decision: one log line, a JSON line for the watch, and counters.

A log line in the default format reads like Postfix's, one per decision, so it can be found by
the reference a sender quotes:

    bouncewise-gate: 7F3A9C20B1: client=[203.0.113.5]:41022 from=<a@example.org>
    to=<b@example.net> size=2301 verdict=spam score=1000.0 scanner=builtin
    reply="554 5.7.1 Message rejected as spam by the content filter (ref 7F3A9C20B1)" ms=4

(on one line). `--log-format json` writes the same fields as one JSON object.

The decisions file contains one JSON object per line with the fields of `Decision`. It is the
interface for later parts of bouncewise: append-only, written as each decision is made.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

__all__ = ["Decision", "DecisionLog", "JsonLogFormatter", "new_reference", "VERDICTS"]

# Verdicts a decision can have, also the labels of the decision counter.
VERDICTS = ("accepted", "spam", "virus", "refused-by-next-hop", "scanner-failure",
            "next-hop-failure", "size", "line-too-long", "recipients", "client-gone")

LOGGER = logging.getLogger("bouncewise.gate")


def new_reference() -> str:
    """Return a new short reference: ten hexadecimal digits, unique enough to find a log line."""
    return secrets.token_hex(5).upper()


@dataclass(frozen=True, slots=True)
class Decision:
    """The gate's decision on one message, or on one refused transaction."""

    ref: str
    client: str
    helo: str
    sender: str
    recipients: tuple[str, ...]
    size: int
    verdict: str
    reply: str
    milliseconds: int
    scanner: str = ""
    score: float | None = None
    findings: tuple[str, ...] = ()
    # Why a scanner or the next hop failed, where one did.
    error: str = ""
    time: float = field(default_factory=time.time)

    def log_line(self) -> str:
        """Return the decision as one key=value line in the manner of Postfix.

        Values the client chose (addresses, names) are escaped, so that no address can put
        a space, a quote or "verdict=" of its own into the line.
        """
        recipients = ",".join(f"<{_escaped(recipient)}>" for recipient in self.recipients[:20])
        if len(self.recipients) > 20:
            recipients += f",(+{len(self.recipients) - 20} more)"
        parts = [f"{self.ref}:", f"client={_escaped(self.client)}",
                 f"from=<{_escaped(self.sender)}>", f"to={recipients}", f"size={self.size}",
                 f"verdict={self.verdict}"]
        if self.score is not None:
            parts.append(f"score={self.score:.1f}")
        if self.scanner:
            parts.append(f"scanner={self.scanner}")
        if self.findings:
            parts.append("found=" + ",".join(self.findings[:10]))
        if self.error:
            parts.append(f'error="{_escaped(self.error, " ")}"')
        parts.append(f'reply="{_escaped(self.reply, " ")}"')
        parts.append(f"ms={self.milliseconds}")
        return " ".join(parts)

    def to_dict(self) -> dict:
        """Return the decision as a dict of JSON types, with an ISO 8601 UTC timestamp."""
        data = asdict(self)
        data["recipients"] = list(self.recipients)
        data["findings"] = list(self.findings)
        data["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time))
        return data


def _escaped(text: str, allowed: str = "") -> str:
    """Return `text` with spaces, quotes, "=" and non-printable characters written as \\xHH."""
    return "".join(character if ("!" <= character <= "~" and character not in '"=\\')
                   or character in allowed else f"\\x{ord(character):02x}"
                   for character in text)


class JsonLogFormatter(logging.Formatter):
    """Writes every log record as one JSON object: decisions as their fields, others as a
    message with its level (and the traceback, where there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        decision = getattr(record, "decision", None)
        if decision is not None:
            return json.dumps(decision, ensure_ascii=False)
        data = {"level": record.levelname.lower(), "message": record.getMessage()}
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class DecisionLog:
    """Writes each decision to the log and the decisions file, and counts them by verdict."""

    def __init__(self, decisions_file: str = "") -> None:
        self.counts: Counter[str] = Counter({verdict: 0 for verdict in VERDICTS})
        self._lock = threading.Lock()
        self._file = open(decisions_file, "a", encoding="utf-8") if decisions_file else None

    def record(self, decision: Decision) -> None:
        """Log `decision`, append it to the decisions file, and count it."""
        LOGGER.info(decision.log_line(), extra={"decision": decision.to_dict()})

        with self._lock:
            self.counts[decision.verdict] += 1
            if self._file is not None:
                self._file.write(json.dumps(decision.to_dict(), ensure_ascii=False) + "\n")
                self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def metrics_text(self, connections: int) -> str:
        """Return the counters in the Prometheus text exposition format."""
        lines = ["# HELP bouncewise_gate_decisions_total Messages decided, by verdict.",
                 "# TYPE bouncewise_gate_decisions_total counter"]
        with self._lock:
            counts = dict(self.counts)
        for verdict, count in sorted(counts.items()):
            lines.append(f'bouncewise_gate_decisions_total{{verdict="{verdict}"}} {count}')
        lines += ["# HELP bouncewise_gate_connections Client connections open now.",
                  "# TYPE bouncewise_gate_connections gauge",
                  f"bouncewise_gate_connections {connections}"]
        return "\n".join(lines) + "\n"
