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

__all__ = ["Decision", "DecisionLog", "new_reference", "VERDICTS"]

# Verdicts a decision can have, also the labels of the decision counter.
VERDICTS = ("accepted", "spam", "virus", "refused-by-next-hop", "scanner-failure",
            "next-hop-failure", "size", "recipients", "client-gone")

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
        """Return the decision as one key=value line in the manner of Postfix."""
        parts = [f"{self.ref}:", f"client={self.client}", f"from=<{self.sender}>",
                 "to=" + ",".join(f"<{recipient}>" for recipient in self.recipients[:20])
                 + (f",(+{len(self.recipients) - 20} more)" if len(self.recipients) > 20 else ""),
                 f"size={self.size}", f"verdict={self.verdict}"]
        if self.score is not None:
            parts.append(f"score={self.score:.1f}")
        if self.scanner:
            parts.append(f"scanner={self.scanner}")
        if self.findings:
            parts.append("found=" + ",".join(self.findings[:10]))
        if self.error:
            parts.append(f'error="{self.error}"')
        parts.append(f'reply="{self.reply}"')
        parts.append(f"ms={self.milliseconds}")
        return " ".join(parts)

    def to_dict(self) -> dict:
        """Return the decision as a dict of JSON types, with an ISO 8601 UTC timestamp."""
        data = asdict(self)
        data["recipients"] = list(self.recipients)
        data["findings"] = list(self.findings)
        data["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time))
        return data


class DecisionLog:
    """Writes each decision to the log and the decisions file, and counts them by verdict."""

    def __init__(self, log_format: str = "text", decisions_file: str = "") -> None:
        self.log_format = log_format
        self.counts: Counter[str] = Counter({verdict: 0 for verdict in VERDICTS})
        self._lock = threading.Lock()
        self._file = open(decisions_file, "a", encoding="utf-8") if decisions_file else None

    def record(self, decision: Decision) -> None:
        """Log `decision`, append it to the decisions file, and count it."""
        if self.log_format == "json":
            LOGGER.info(json.dumps(decision.to_dict(), ensure_ascii=False))
        else:
            LOGGER.info(decision.log_line())

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
