"""Input readers: turn paths (files, mbox files, Maildirs, folders, standard input) into a stream
of messages, each with the name it is reported under.

Everything streams: an mbox file is read line by line and one message at a time is held in
memory, cut at the message size limit.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from bouncewise.config import DEFAULT_LIMITS, Limits
from bouncewise.mail.message import unreadable_cause


@dataclass(frozen=True, slots=True)
class Item:
    """One message read from an input, or the error that kept it from being read."""

    source: str
    data: bytes = b""
    error: str = ""


def iter_items(paths: Iterable[str | os.PathLike] | str | os.PathLike,
               limits: Limits = DEFAULT_LIMITS) -> Iterator[Item]:
    """Yield the messages of every path in order; unreadable paths yield an `Item` with an error.

    A single str or path-like object counts as one path, not as a sequence of characters.
    """
    path_list = [paths] if isinstance(paths, (str, os.PathLike)) else paths
    for path in path_list:
        yield from _items_of(os.fspath(path), limits)


def _items_of(path: str, limits: Limits) -> Iterator[Item]:
    if path == "-":
        yield from _items_of_stream(sys.stdin.buffer, "-", limits)
    elif os.path.isdir(path):
        yield from _items_of_folder(path, limits)
    else:
        yield from _items_of_file(path, limits)


def _items_of_file(path: str, limits: Limits) -> Iterator[Item]:
    try:
        with open(path, "rb") as stream:
            yield from _items_of_stream(stream, path, limits)
    except FileNotFoundError:
        yield Item(path, error="not found")
    except IsADirectoryError:
        yield Item(path, error="is a directory that cannot be read")
    except PermissionError:
        yield Item(path, error="permission denied")
    except OSError as error:
        yield Item(path, error=f"cannot be read: {error.strerror or error}")


def _items_of_folder(path: str, limits: Limits) -> Iterator[Item]:
    """Yield the messages under a folder: a Maildir's new/ and cur/, or every file recursively."""
    if all(os.path.isdir(os.path.join(path, name)) for name in ("cur", "new", "tmp")):
        roots = [os.path.join(path, "new"), os.path.join(path, "cur")]
    else:
        roots = [path]

    for root in roots:
        for folder, subfolders, files in os.walk(root):
            subfolders.sort()
            # Maildir++ keeps its folders' tmp/ beside cur/ and new/; those are not delivered yet.
            subfolders[:] = [name for name in subfolders if name != "tmp"]
            for name in sorted(files):
                if name.startswith("."):
                    continue
                file_path = os.path.join(folder, name)
                if not os.path.isfile(file_path):
                    # A named pipe, socket or device inside a folder would block or never end.
                    yield Item(file_path, error="not a regular file, skipped")
                    continue
                yield from _items_of_file(file_path, limits)


def _items_of_stream(stream: BinaryIO, source: str, limits: Limits) -> Iterator[Item]:
    first, skipped = _first_line(stream, limits)
    if b"\n" not in first and b"\r" in first:
        # Old Mac line endings: without translation an mbox would be one endless line.
        stream = io.BufferedReader(_BareCrReader(stream, first))
        first, skipped = _first_line(stream, limits)
    if not first.strip():
        yield Item(source, error="no message: only blank bytes" if skipped else "empty input")
        return

    if first.startswith(b"From "):
        yield from _mbox_messages(first, stream, source, limits)
        return

    # Binary data and plain text are rejected on their first line, before the rest is read.
    cause = unreadable_cause(first)
    if cause:
        yield Item(source, error=cause)
        return

    # A message over the size limit is cut; the reader marks it truncated.
    yield Item(source, first + _read_up_to(stream, limits.max_message_size + 1 - len(first)))


# Bytes asked of a stream at once. `read(n)` allocates n bytes before it reads, so asking for
# the whole size limit costs a large allocation for every small file.
_READ_CHUNK = 256 * 1024


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    """Read at most `size` bytes, in chunks."""
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(_READ_CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class _BareCrReader(io.RawIOBase):
    """A raw stream that turns the bare CR line endings of `stream` into LF.

    Only for input whose first line showed CR and no LF. `head` contains the bytes already read.
    """

    def __init__(self, stream: BinaryIO, head: bytes) -> None:
        super().__init__()
        self._stream = stream
        self._pending = head

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._pending:
            self._pending = self._stream.read(len(buffer))
        chunk, self._pending = self._pending[: len(buffer)], self._pending[len(buffer) :]
        chunk = chunk.replace(b"\r", b"\n")
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _first_line(stream: BinaryIO, limits: Limits) -> tuple[bytes, int]:
    """Return the first line that is not blank, and the number of blank bytes skipped before it."""
    skipped = 0
    line = stream.readline(limits.max_line_length)
    while line and not line.strip() and skipped < limits.max_header_size:
        skipped += len(line)
        line = stream.readline(limits.max_line_length)
    return line, skipped


# A full envelope line, "From sender Thu Jul  2 12:05:05 2020": some programs that append to an
# mbox leave no empty line before it, and body text almost never takes this exact shape.
_ENVELOPE_LINE = re.compile(
    rb"From \S{1,512} {1,4}(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep"
    rb"|Oct|Nov|Dec) {1,2}\d{1,2} \d\d:\d\d(?::\d\d)? ")


def _mbox_messages(first: bytes, stream: BinaryIO, source: str, limits: Limits) -> Iterator[Item]:
    """Split an mbox file at "From " lines that follow an empty line or have the full envelope
    shape, one message at a time.

    Lines are read in pieces of at most `max_line_length` bytes, so a piece may be the middle of
    a long line. Only a piece that starts a line can be a separator or a quoted ">From ".
    """
    number = 0
    chunks: list[bytes] = []
    size = 0
    previous_blank = True
    at_line_start = True
    line = first

    while line:
        if at_line_start and line.startswith(b"From ") and (previous_blank
                                                             or _ENVELOPE_LINE.match(line)):
            if number:
                yield Item(f"{source}#{number}", b"".join(chunks))
            number += 1
            chunks, size = [], 0
        else:
            if at_line_start and line.startswith(b">From "):
                line = line[1:]
            if size < limits.max_message_size:
                chunks.append(line)
                size += len(line)
        previous_blank = at_line_start and line in (b"\n", b"\r\n")
        at_line_start = line.endswith(b"\n")
        line = stream.readline(limits.max_line_length)
    if number:
        yield Item(f"{source}#{number}", b"".join(chunks))
