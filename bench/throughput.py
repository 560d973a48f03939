"""Compare how many bounce files per second bouncewise and Sisimai 4 classify.

Usage: python bench/throughput.py [--corpus FOLDER] [--copies 15] [--repeats 3]

The script copies every file of FOLDER (default: ../shared/corpus/bounces seen from the
repository root) COPIES times into one flat temporary folder, then times whole runs of:

  bouncewise classify TMP --jobs 1 --format jsonl > /dev/null
  perl -MSisimai -e 'print Sisimai->dump($ARGV[0])' TMP > /dev/null
  bouncewise classify TMP --jobs 2 --format jsonl > /dev/null

Each command runs REPEATS times, the three commands taking turns, and the best (shortest) run of
each is reported, with time.perf_counter around the subprocess. Process start-up is part of every
run. `Sisimai->dump` is Sisimai's documented way to turn a Maildir-like folder into JSON. It
serialises with the JSON module's backend, and Debian's libjson-perl falls back to the slow
pure-Perl JSON::PP unless libjson-xs-perl is installed, so the backend is printed too. Set
PERL_JSON_BACKEND=JSON::PP to time the pure-Perl backend where JSON::XS is installed.

Needs Sisimai (Debian: `apt-get install libsisimai-perl libjson-xs-perl`) and the corpus. Without
either, the script prints why it skipped and exits 0. Timings are printed only: no test checks them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPOSITORY.parent / "shared" / "corpus" / "bounces"
SISIMAI_DUMP = "print Sisimai->dump($ARGV[0])"
SISIMAI_INSTALL = "apt-get install libsisimai-perl libjson-xs-perl"


def find_bouncewise() -> str | None:
    """Return the bouncewise command beside this Python, or the one on PATH."""
    beside = Path(sys.executable).parent / "bouncewise"
    if beside.is_file():
        return str(beside)
    return shutil.which("bouncewise")


def perl_output(code: str) -> str | None:
    """Run a line of Perl with Sisimai loaded and return its output, or None if either is missing."""
    try:
        done = subprocess.run(["perl", "-MSisimai", "-e", code], capture_output=True, text=True,
                              check=False)
    except FileNotFoundError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or "unknown" where it is not readable."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return "unknown"


def copy_corpus(corpus: Path, target: Path, copies: int) -> int:
    """Copy every file of `corpus` `copies` times into the flat folder `target` and return the count."""
    names = sorted(entry.name for entry in corpus.iterdir() if entry.is_file())
    for copy in range(copies):
        for name in names:
            shutil.copyfile(corpus / name, target / f"{copy:02d}-{name}")
    return len(names) * copies


def build_commands(bouncewise: str, folder: str) -> dict[str, list[str]]:
    """Return the timed commands by name, each reading every file in `folder`."""
    return {
        "bouncewise --jobs 1": [bouncewise, "classify", folder, "--jobs", "1", "--format", "jsonl"],
        "Sisimai->dump": ["perl", "-MSisimai", "-e", SISIMAI_DUMP, folder],
        "bouncewise --jobs 2": [bouncewise, "classify", folder, "--jobs", "2", "--format", "jsonl"],
    }


def count_records(command: list[str], is_sisimai: bool) -> int:
    """Run `command` once untimed and count the records it prints."""
    done = subprocess.run(command, capture_output=True, check=False)
    if is_sisimai:
        return len(json.loads(done.stdout or b"[]"))
    return done.stdout.count(b"\n")


def time_run(command: list[str]) -> float:
    """Run `command` with output to /dev/null and return the wall time in seconds."""
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start

    # bouncewise exits 1 when some input could not be read. Any other non-zero status is a broken run.
    if done.returncode not in (0, 1):
        sys.exit(f"error: {' '.join(command)} failed with exit status {done.returncode}:\n"
                 f"{done.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def positive_int(text: str) -> int:
    """Parse a command-line count that must be at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                        help="folder of bounce files to copy (default: %(default)s)")
    parser.add_argument("--copies", type=positive_int, default=15,
                        help="copies of the corpus (default: 15)")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="timed runs of each command; the best is reported (default: 3)")
    options = parser.parse_args()

    if not options.corpus.is_dir():
        print(f"skipped: corpus folder {options.corpus} not found; pass --corpus FOLDER")
        return 0
    sisimai_version = perl_output("print Sisimai->version")
    if sisimai_version is None:
        print("skipped: `perl -MSisimai` failed because Perl or Sisimai is not installed. "
              f"On Debian: {SISIMAI_INSTALL}")
        return 0
    bouncewise = find_bouncewise()
    if bouncewise is None:
        print("skipped: the bouncewise command was not found; run `pip install -e .` first")
        return 0
    json_backend = perl_output("require JSON; print JSON->backend") or "unknown"

    with tempfile.TemporaryDirectory(prefix="bouncewise-throughput-") as folder:
        files = copy_corpus(options.corpus, Path(folder), options.copies)
        commands = build_commands(bouncewise, folder)
        print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs "
              f"({len(os.sched_getaffinity(0))} usable by this process)")
        print(f"Python {sys.version.split()[0]}, Sisimai {sisimai_version} "
              f"(JSON backend {json_backend})")
        print(f"{files} files: {options.copies} copies of the {files // options.copies} files "
              f"in {options.corpus}")

        # An untimed run of each tool on the original corpus shows that both produced records.
        untimed = build_commands(bouncewise, str(options.corpus))
        records_bouncewise = count_records(untimed["bouncewise --jobs 1"], is_sisimai=False)
        records_sisimai = count_records(untimed["Sisimai->dump"], is_sisimai=True)
        print(f"records per corpus copy: bouncewise {records_bouncewise}, Sisimai {records_sisimai}")

        # Other processes on the machine slow every run down, so the load is part of the record.
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        best = {name: float("inf") for name in commands}
        for round_number in range(1, options.repeats + 1):
            for name, command in commands.items():
                seconds = time_run(command)
                best[name] = min(best[name], seconds)
                print(f"  round {round_number}: {name:20} {seconds:7.2f} s")

    print("load average after:  {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    rates = {name: files / seconds for name, seconds in best.items()}
    print(f"\nbest of {options.repeats} runs each, whole process including start-up:")
    for name, seconds in best.items():
        print(f"  {name:20} {seconds:7.2f} s  {rates[name]:8.0f} files/s")
    print(f"bouncewise --jobs 1 / Sisimai: {rates['bouncewise --jobs 1'] / rates['Sisimai->dump']:.2f}x")
    print(f"--jobs 2 speed-up over --jobs 1: "
          f"{rates['bouncewise --jobs 2'] / rates['bouncewise --jobs 1']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
