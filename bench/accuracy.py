"""Print how often bouncewise agrees with labelled bounces, per field, and the confusion pairs.

Usage: python bench/accuracy.py [FOLDER] [--labels labels.json] [--show-misses] [--match TEXT]
                                 [--peer sisimai]

FOLDER contains one message per file and a `labels.json` beside it (or named with --labels) that
maps each file name to the expected rows, as in the shared corpus. A label status of the form
4.0.9NN or 5.0.9NN is a placeholder for "no explicit status", so only its class digit is compared.

--peer sisimai also classifies the same files with Sisimai 4 (Debian's libsisimai-perl), in one
perl process for the whole folder, and prints its figures in a second column beside bouncewise's,
with the number of rows each tool produced, then each tool's reason confusion (and misses with
--show-misses). Sisimai's rows are paired with the labels and compared exactly as bouncewise's.
Its hard bounce is `softbounce == 0`, because Sisimai 4.25 has no `hardbounce` method and uses
-1 for "neither soft nor hard". Where perl or Sisimai is missing, the script prints one line
saying so and then bouncewise's figures alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bouncewise.classify import Failure, iter_classify

FIELDS = ("reason", "recipient", "status", "reply_code", "hard_bounce")
# Result field -> key of the same value in a label row.
LABEL_KEYS = {"reason": "reason", "recipient": "recipient", "status": "status",
              "reply_code": "replycode", "hard_bounce": "hardbounce"}
PLACEHOLDER_STATUS = re.compile(r"^[245]\.0\.9\d\d$")
PEERS = ("sisimai",)
# Only stops a hung perl process: Sisimai 4.25.15 read the 390 corpus files in about 0.5 s
# on a shared 2-CPU machine.
PEER_TIMEOUT_SECONDS = 600
# Exit status of SISIMAI_PROGRAM when the Sisimai module cannot be loaded.
SISIMAI_MISSING_EXIT = 3
INSTALL_HINT = "apt-get install libsisimai-perl"

# Reads NUL-terminated paths on stdin and prints one JSON object: Sisimai's version and, per path
# in input order, its rows or the error Sisimai raised. JSON::PP ships with perl. `ascii` keeps
# the output valid whether Sisimai returns byte or character strings.
SISIMAI_PROGRAM = r"""
use strict;
use warnings;
use JSON::PP;

unless (eval { require Sisimai; 1 }) {
    print STDERR "cannot load Sisimai: $@";
    exit 3;  # SISIMAI_MISSING_EXIT
}

# Read every path first: Sisimai reads mailboxes line by line, so $/ must keep its default.
my @paths = do { local $/; split /\0/, <STDIN> // '' };
my @files;
for my $path (@paths) {
    my $data = eval { Sisimai->make($path, delivered => 1) };
    if ($@) {
        push @files, { rows => [], error => "$@" };
        next;
    }
    my @rows;
    for my $row (@{ $data // [] }) {
        my $softbounce = $row->softbounce;
        $softbounce = -1 unless defined $softbounce && length $softbounce;
        push @rows, {
            recipient      => $row->recipient->address // '',
            reason         => $row->reason // '',
            deliverystatus => $row->deliverystatus // '',
            replycode      => $row->replycode // '',
            softbounce     => 0 + $softbounce,
            smtpagent      => $row->smtpagent // '',
            diagnosticcode => $row->diagnosticcode // '',
        };
    }
    push @files, { rows => \@rows };
}
print JSON::PP->new->ascii->canonical->encode({ version => "$Sisimai::VERSION", files => \@files });
"""


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


@dataclass(frozen=True)
class PeerRow:
    """One row of another classifier, under the attribute names of bouncewise's Result."""

    recipient: str
    status: str
    reply_code: str
    reason: str
    hard_bounce: bool
    decoded_by: str
    diagnostic: str


class PeerUnavailable(Exception):
    """Raised when the peer classifier cannot run or returns unreadable output."""


@dataclass
class Agreement:
    """Per-field agreement of a folder's results with its labels."""

    rows: int = 0
    # Number of results the classifier returned for the measured files, paired with a label or not.
    produced: int = 0
    agree: Counter = field(default_factory=Counter)
    # (expected reason, reason got or "(no row)") -> count of rows
    confusion: Counter = field(default_factory=Counter)
    # (file name, expected row, result or None, per-field verdict) of every disagreeing row
    misses: list = field(default_factory=list)

    def ratio(self, field_name: str) -> float:
        """Return the share of rows whose `field_name` agrees, or 0.0 if there are no rows."""
        return self.agree[field_name] / self.rows if self.rows else 0.0


def labelled_names(folder: Path, labels: dict[str, list[dict]], match: str = "") -> list[str]:
    """Return the sorted names of the files in `folder` that have labels and contain `match`."""
    return [name for name in sorted(os.listdir(folder)) if name in labels and match in name]


def classify_with_bouncewise(path: Path, name: str) -> list:
    """Return bouncewise's results for one file, read as the command reads it: a file that is an
    mbox gives the results of each of its messages. A file that cannot be read gives none."""
    return [outcome for outcome in iter_classify(path) if not isinstance(outcome, Failure)]


def measure(folder: Path, labels: dict[str, list[dict]], match: str = "",
            read_results: Callable[[Path, str], list] = classify_with_bouncewise) -> Agreement:
    """Classify every labelled file of `folder` whose name contains `match` and compare with `labels`.

    `read_results(path, name)` returns one file's results. Each result needs the attributes of
    FIELDS plus `decoded_by` and `diagnostic`. The default is bouncewise itself.
    """
    agreement = Agreement()
    for name in labelled_names(folder, labels, match):
        results = read_results(folder / name, name)
        agreement.produced += len(results)
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


def peer_row_from_sisimai(row: dict) -> PeerRow:
    """Convert one row printed by SISIMAI_PROGRAM. Only softbounce 0 is a hard bounce."""
    return PeerRow(recipient=row["recipient"], status=row["deliverystatus"],
                   reply_code=str(row["replycode"]), reason=row["reason"],
                   hard_bounce=row["softbounce"] == 0, decoded_by=row["smtpagent"],
                   diagnostic=row["diagnosticcode"])


def run_sisimai(folder: Path, names: list[str]) -> tuple[str, dict[str, list[PeerRow]], list[str]]:
    """Classify the files `names` of `folder` with Sisimai in one perl process.

    Returns Sisimai's version, the rows per file name, and one line per file on which Sisimai
    raised an error (that file counts as giving no row). Raises PeerUnavailable when perl or
    Sisimai is missing, perl fails or times out, or its output is not the expected JSON.
    """
    paths = b"".join(os.fsencode(folder / name) + b"\0" for name in names)
    try:
        completed = subprocess.run(["perl", "-e", SISIMAI_PROGRAM], input=paths,
                                   capture_output=True, timeout=PEER_TIMEOUT_SECONDS, check=False)
    except FileNotFoundError:
        raise PeerUnavailable(f"sisimai: perl not found, so Sisimai was not compared "
                              f"(install it with: {INSTALL_HINT})") from None
    except subprocess.TimeoutExpired:
        raise PeerUnavailable(f"sisimai: perl timed out after {PEER_TIMEOUT_SECONDS} s, "
                              f"so Sisimai was not compared") from None

    if completed.returncode == SISIMAI_MISSING_EXIT:
        raise PeerUnavailable(f"sisimai: the perl module Sisimai is missing, so Sisimai was not "
                              f"compared (install it with: {INSTALL_HINT})")
    if completed.returncode != 0:
        message = completed.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise PeerUnavailable(f"sisimai: perl failed with exit status {completed.returncode}, "
                              f"so Sisimai was not compared: {' '.join(message)}")

    try:
        output = json.loads(completed.stdout)
        files = output["files"]
        if len(files) != len(names):
            raise ValueError(f"{len(files)} results for {len(names)} files")
        rows = {name: [peer_row_from_sisimai(row) for row in result["rows"]]
                for name, result in zip(names, files)}
    except (ValueError, KeyError, TypeError) as error:
        raise PeerUnavailable(f"sisimai: perl printed unexpected output, so Sisimai was not "
                              f"compared: {error}") from None

    errors = [f"{name}: {result['error'].strip()}" for name, result in zip(names, files)
              if result.get("error")]
    return str(output.get("version", "")).lstrip("v"), rows, errors


def format_figure(agreement: Agreement, field_name: str) -> str:
    """Return one field's agreement as "ratio  (agreeing/rows)"."""
    return f"{agreement.ratio(field_name):.4f}  ({agreement.agree[field_name]}/{agreement.rows})"


def print_report(agreement: Agreement, labels: dict, show_misses: bool) -> None:
    """Print bouncewise's figures alone, in the output format of the script without --peer."""
    print(f"rows: {agreement.rows} in {len(labels)} labelled files")
    for field_name in FIELDS:
        print(f"{field_name:12} {format_figure(agreement, field_name)}")
    print("\nreason confusion (expected -> got):")
    if agreement.confusion:
        print(format_confusion(agreement.confusion))
    if show_misses:
        print("\nmisses:")
        if agreement.misses:
            print(format_misses(agreement.misses))


def print_comparison(agreements: dict[str, Agreement], labels: dict, show_misses: bool) -> None:
    """Print one column of figures per classifier, then each one's confusion and misses."""
    rows = next(iter(agreements.values())).rows
    print(f"rows: {rows} in {len(labels)} labelled files")
    print(f"{'':12} " + " ".join(f"{tool:22}" for tool in agreements).rstrip())
    print(f"{'produced':12} " + " ".join(f"{f'{agreement.produced} rows':22}"
                                        for agreement in agreements.values()).rstrip())
    for field_name in FIELDS:
        print(f"{field_name:12} " + " ".join(f"{format_figure(agreement, field_name):22}"
                                            for agreement in agreements.values()).rstrip())

    for tool, agreement in agreements.items():
        print(f"\nreason confusion of {tool} (expected -> got):")
        if agreement.confusion:
            print(format_confusion(agreement.confusion))
    if show_misses:
        for tool, agreement in agreements.items():
            print(f"\nmisses of {tool}:")
            if agreement.misses:
                print(format_misses(agreement.misses))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "bounces"
    parser.add_argument("folder", nargs="?", default=str(default))
    parser.add_argument("--labels", help="labels file (default: labels.json beside the folder)")
    parser.add_argument("--show-misses", action="store_true", help="print every disagreeing row")
    parser.add_argument("--match", default="", help="read only files whose name contains this text")
    parser.add_argument("--peer", choices=PEERS,
                        help="also classify the files with this tool and print its figures "
                             "in a second column")
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
    if not options.peer:
        print_report(agreement, labels, options.show_misses)
        return 0

    names = labelled_names(folder, labels, options.match)
    try:
        version, peer_rows, peer_errors = run_sisimai(folder, names)
    except PeerUnavailable as error:
        print(error)
        print_report(agreement, labels, options.show_misses)
        return 0
    for line in peer_errors:
        print(f"sisimai raised an error, counted as no row: {line[:300]}")

    peer_agreement = measure(folder, labels, options.match,
                             read_results=lambda path, name: peer_rows[name])
    print_comparison({"bouncewise": agreement, f"sisimai {version}": peer_agreement},
                     labels, options.show_misses)
    return 0


if __name__ == "__main__":
    sys.exit(main())
