"""The result of classifying one recipient, and the output formats for many of them."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Result:
    """One recipient of one bounce: what failed and why. Field names are a stable contract."""

    source: str
    recipient: str
    status: str
    reply_code: str
    reason: str
    category: str
    hard_bounce: bool
    action: str = ""
    diagnostic: str = ""
    diagnostic_type: str = ""
    remote_mta: str = ""
    reporting_mta: str = ""
    smtp_command: str = ""
    sender: str = ""
    original_message_id: str = ""
    subject: str = ""
    timestamp: str = ""
    feedback_type: str = ""
    decoded_by: str = ""
    advice: str = ""
    # True where the message was longer than `max_message_size` and only its start was read.
    truncated: bool = False

    def to_dict(self) -> dict[str, str | bool]:
        """Return the fields as a plain dict, in declaration order."""
        return {name: getattr(self, name) for name in FIELD_NAMES}


FIELD_NAMES = tuple(field.name for field in fields(Result))

# Columns of the terminal table, with their widths; the full record is in the other formats.
TABLE_COLUMNS = (("source", 40), ("recipient", 32), ("status", 7), ("reply_code", 10),
                 ("reason", 15), ("category", 19), ("hard_bounce", 11))


def to_jsonl(results: Iterable[Result]) -> Iterator[str]:
    """Yield one JSON object per line."""
    for result in results:
        yield json.dumps(result.to_dict(), ensure_ascii=False) + "\n"


def to_json(results: Iterable[Result]) -> Iterator[str]:
    """Yield a JSON array, streamed element by element."""
    yield "["
    first = True
    for result in results:
        yield ("\n  " if first else ",\n  ") + json.dumps(result.to_dict(), ensure_ascii=False)
        first = False
    yield "\n]\n" if not first else "]\n"


def to_csv(results: Iterable[Result]) -> Iterator[str]:
    """Yield CSV with a header row of the field names."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELD_NAMES, lineterminator="\n")
    writer.writeheader()
    yield _drain(buffer)
    for result in results:
        row = result.to_dict()
        # Written as in the JSON formats, not as Python's True and False.
        row["hard_bounce"] = "true" if result.hard_bounce else "false"
        row["truncated"] = "true" if result.truncated else "false"
        writer.writerow(row)
        yield _drain(buffer)


def to_table(results: Iterable[Result]) -> Iterator[str]:
    """Yield a fixed-width table for reading on a terminal, as wide as the terminal allows."""
    columns = _fitted_columns(shutil.get_terminal_size().columns)
    yield _table_row({name: name for name, _ in columns}, columns)
    for result in results:
        row = result.to_dict()
        row["hard_bounce"] = "yes" if result.hard_bounce else "no"
        yield _table_row(row, columns)


def _fitted_columns(terminal_width: int) -> tuple[tuple[str, int], ...]:
    """Give the source and recipient columns the terminal's spare width, up to 80 each."""
    used = sum(width + 2 for _, width in TABLE_COLUMNS)
    spare = max(0, terminal_width - used)
    widened = []
    for name, width in TABLE_COLUMNS:
        if name in ("source", "recipient"):
            extra = min(spare // 2, 80 - width)
            width += max(0, extra)
        widened.append((name, width))
    return tuple(widened)


def _table_row(row: dict, columns: tuple[tuple[str, int], ...] = TABLE_COLUMNS) -> str:
    cells = []
    for name, width in columns:
        value = str(row[name])
        if len(value) > width:
            value = "…" + value[-(width - 1):] if name == "source" else value[: width - 1] + "…"
        cells.append(value.ljust(width))
    return "  ".join(cells).rstrip() + "\n"


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


FORMATTERS = {"jsonl": to_jsonl, "json": to_json, "csv": to_csv, "table": to_table}
