"""Print how often bouncewise agrees with labelled bounces, per field, and the confusion pairs.

Usage: python bench/accuracy.py [FOLDER] [--labels labels.json] [--show-misses]

FOLDER holds one message per file and a `labels.json` beside it (or named with --labels) that
maps each file name to the expected rows, as in the shared corpus. A label status of the form
4.0.9NN or 5.0.9NN is a placeholder for "no explicit status", so only its class digit is compared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bouncewise import classify
from bouncewise.classify import UnreadableInput

FIELDS = ("reason", "recipient", "status", "reply_code", "hard_bounce")
# Result field -> key of the same value in a label row.
LABEL_KEYS = {"reason": "reason", "recipient": "recipient", "status": "status",
              "reply_code": "replycode", "hard_bounce": "hardbounce"}
PLACEHOLDER_STATUS = re.compile(r"^[245]\.0\.9\d\d$")


def status_agrees(expected: str, actual: str) -> bool:
    """Compare status codes, reading a placeholder label as its class digit only."""
    if PLACEHOLDER_STATUS.match(expected):
        return actual[:1] == expected[:1]
    return expected == actual


def compare_row(expected: dict, actual) -> dict[str, bool]:
    """Return per-field agreement of one labelled row and one result (None if missing)."""
    if actual is None:
        return {name: False for name in FIELDS}
    wanted_recipient = expected.get("recipient")
    return {
        "reason": expected["reason"] == actual.reason,
        # A label without a recipient accepts any value.
        "recipient": wanted_recipient is None or wanted_recipient.lower() == actual.recipient.lower(),
        "status": status_agrees(expected.get("status", ""), actual.status),
        "reply_code": expected.get("replycode", "") == actual.reply_code,
        "hard_bounce": bool(expected.get("hardbounce")) == actual.hard_bounce,
    }


def pair_rows(expected_rows: list[dict], results: list) -> list[tuple[dict, object]]:
    """Pair labelled rows with results by recipient, then the rest in order."""
    remaining = list(results)
    pairs = []
    for expected in expected_rows:
        match = next((result for result in remaining
                      if expected.get("recipient", "").lower() == result.recipient.lower()), None)
        if match is None and remaining:
            match = remaining[0]
        if match is not None:
            remaining.remove(match)
        pairs.append((expected, match))
    return pairs


@dataclass
class Agreement:
    """Per-field agreement of a folder's results with its labels."""

    rows: int = 0
    agree: Counter = field(default_factory=Counter)
    # (expected reason, reason got or "(no row)") -> count of rows
    confusion: Counter = field(default_factory=Counter)
    # (file name, expected row, result or None, per-field verdict) of every disagreeing row
    misses: list = field(default_factory=list)

    def ratio(self, field_name: str) -> float:
        """Return the share of rows whose `field_name` agrees, or 0.0 if there are no rows."""
        return self.agree[field_name] / self.rows if self.rows else 0.0


def measure(folder: Path, labels: dict[str, list[dict]], match: str = "") -> Agreement:
    """Classify every labelled file of `folder` whose name contains `match` and compare with `labels`."""
    agreement = Agreement()
    for name in sorted(os.listdir(folder)):
        if name not in labels or match not in name:
            continue
        try:
            results = classify(folder / name, source=name)
        except UnreadableInput:
            results = []
        for expected, actual in pair_rows(labels[name], results):
            agreement.rows += 1
            verdict = compare_row(expected, actual)
            agreement.agree.update(field_name for field_name, ok in verdict.items() if ok)
            if not verdict["reason"]:
                agreement.confusion[(expected["reason"], actual.reason if actual else "(no row)")] += 1
            if not all(verdict.values()):
                agreement.misses.append((name, expected, actual, verdict))
    return agreement


def format_confusion(confusion: Counter) -> str:
    """Return (expected, got) pairs with their counts as lines "count  expected -> got", most first."""
    return "\n".join(f"  {count:3}  {expected} -> {got}"
                     for (expected, got), count in confusion.most_common())


def field_confusion(misses: list, field_name: str) -> Counter:
    """Count (expected, got) value pairs of `field_name` over the rows where that field disagrees."""
    label_key = LABEL_KEYS[field_name]
    pairs = Counter()
    for _, expected, actual, verdict in misses:
        if not verdict[field_name]:
            got = getattr(actual, field_name) if actual else "(no row)"
            pairs[(expected.get(label_key), got)] += 1
    return pairs


def format_misses(misses: list) -> str:
    """Return every disagreeing row with the fields that differ, expected and got."""
    lines = []
    for name, expected, actual, verdict in misses:
        wrong = [field_name for field_name, ok in verdict.items() if not ok]
        got = {field_name: getattr(actual, field_name, None) for field_name in FIELDS} if actual else None
        lines.append(f"  {name}: {','.join(wrong)}\n    expected {expected}\n    got      {got}")
        if actual:
            lines.append(f"    by {actual.decoded_by}: {actual.diagnostic[:300]!r}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "bounces"
    parser.add_argument("folder", nargs="?", default=str(default))
    parser.add_argument("--labels", help="labels file (default: labels.json beside the folder)")
    parser.add_argument("--show-misses", action="store_true", help="print every disagreeing row")
    parser.add_argument("--match", default="", help="read only files whose name contains this text")
    options = parser.parse_args()

    folder = Path(options.folder)
    labels_path = Path(options.labels) if options.labels else folder.parent / "labels.json"
    if not folder.is_dir() or not labels_path.is_file():
        print(f"error: {folder} or {labels_path} not found", file=sys.stderr)
        return 2
    labels = json.loads(labels_path.read_text())

    agreement = measure(folder, labels, options.match)
    if not agreement.rows:
        print("no labelled rows matched", file=sys.stderr)
        return 2
    print(f"rows: {agreement.rows} in {len(labels)} labelled files")
    for field_name in FIELDS:
        print(f"{field_name:12} {agreement.ratio(field_name):.4f}  "
              f"({agreement.agree[field_name]}/{agreement.rows})")
    print("\nreason confusion (expected -> got):")
    if agreement.confusion:
        print(format_confusion(agreement.confusion))
    if options.show_misses:
        print("\nmisses:")
        if agreement.misses:
            print(format_misses(agreement.misses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
