"""Input readers: turn paths (files, mbox files, Maildirs, folders, standard input) into a stream
of messages, each with the name it is reported under.

Everything streams: an mbox file is read line by line and one message at a time is held in
memory, cut at the message size limit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from bouncewise.config import DEFAULT_LIMITS, Limits


@dataclass(frozen=True, slots=True)
class Item:
    """One message read from an input, or the error that kept it from being read."""

    source: str
    data: bytes = b""
    error: str = ""


def iter_items(paths: Iterable[str], limits: Limits = DEFAULT_LIMITS) -> Iterator[Item]:
    """Yield the messages of every path in order; unreadable paths yield an `Item` with an error."""
    for path in paths:
        yield from _items_of(path, limits)


def _items_of(path: str, limits: Limits) -> Iterator[Item]:
    if path == "-":
        yield from _items_of_stream(sys.stdin.buffer, "-", limits)
        return
    try:
        if os.path.isdir(path):
            yield from _items_of_folder(path, limits)
            return
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
                yield from _items_of(os.path.join(folder, name), limits)


def _items_of_stream(stream: BinaryIO, source: str, limits: Limits) -> Iterator[Item]:
    first = stream.readline(limits.max_line_length)
    if not first.strip():
        rest = stream.read(64)
        if not rest.strip():
            yield Item(source, error="empty input" if not (first + rest) else "no message: only blank bytes")
            return
        first += rest + stream.readline(limits.max_line_length)

    if first.startswith(b"From "):
        yield from _mbox_messages(first, stream, source, limits)
        return

    data = first + stream.read(limits.max_message_size + 1 - len(first))
    if b":" not in data[:4096] and b"\n" not in data.strip():
        yield Item(source, error=f"not a mail message ({len(data)} bytes with no header field)")
        return
    # A message over the size limit is cut; the reader marks it truncated.
    yield Item(source, data)
    _drain(stream)


def _drain(stream: BinaryIO) -> None:
    """Read the rest of an over-long message without keeping it."""
    while stream.read(1 << 20):
        pass


def _mbox_messages(first: bytes, stream: BinaryIO, source: str, limits: Limits) -> Iterator[Item]:
    """Split an mbox file at "From " lines that follow an empty line, one message at a time."""
    number = 0
    chunks: list[bytes] = []
    size = 0
    previous_blank = True
    line = first

    while line:
        if line.startswith(b"From ") and previous_blank:
            if number:
                yield Item(f"{source}#{number}", b"".join(chunks))
            number += 1
            chunks, size = [], 0
        else:
            if line.startswith(b">From "):
                line = line[1:]
            if size < limits.max_message_size:
                chunks.append(line)
                size += len(line)
        previous_blank = line in (b"\n", b"\r\n")
        line = stream.readline(limits.max_line_length)
    if number:
        yield Item(f"{source}#{number}", b"".join(chunks))
