"""Property tests: random bytes and damaged bounces never crash `classify` and never hang it."""

from __future__ import annotations

import time

from conftest import EXAMPLES, postfix_dsn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bouncewise import UnreadableInput, classify

# A guard against hangs, not a benchmark: inputs here are at most a few hundred kilobytes.
SECONDS_PER_INPUT = 5.0

# Bytes kept of a mutated message, so that repeated mutations cannot grow it without bound.
MAX_MUTATED_SIZE = 400_000

SEEDS = [path.read_bytes() for path in sorted(EXAMPLES.glob("*.eml"))] + [postfix_dsn()]

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


def _check(data: bytes) -> None:
    started = time.perf_counter()
    try:
        results = classify(data)
    except UnreadableInput:
        results = []
    assert time.perf_counter() - started < SECONDS_PER_INPUT
    assert isinstance(results, list)
    for result in results:
        assert isinstance(result.to_dict(), dict)


def _boundary_of(message: bytes) -> bytes:
    start = message.find(b'boundary="')
    if start < 0:
        return b"--none"
    start += len(b'boundary="')
    return b"--" + message[start : message.find(b'"', start)]


@st.composite
def mutated_bounces(draw) -> bytes:
    """Draw one example bounce and damage it with one to four mutations."""
    message = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cut", "flip", "nul", "insert", "duplicate boundary",
                                     "nest", "repeat line", "drop newlines"]))
        position = draw(st.integers(0, len(message)))
        if kind == "cut":
            del message[position:]
        elif kind == "flip" and message:
            index = min(position, len(message) - 1)
            message[index] ^= draw(st.integers(1, 255))
        elif kind == "nul":
            message[position:position] = b"\0" * draw(st.integers(1, 64))
        elif kind == "insert":
            message[position:position] = draw(st.binary(max_size=200))
        elif kind == "duplicate boundary":
            boundary = _boundary_of(bytes(message))
            message[position:position] = (b"\n" + boundary + b"\n") * draw(st.integers(1, 500))
        elif kind == "nest":
            depth = draw(st.integers(1, 400))
            wrapper = b"Content-Type: multipart/mixed; boundary=n\n\n--n\n"
            message[0:0] = wrapper * depth
        elif kind == "repeat line":
            end = message.find(b"\n", position)
            line = bytes(message[position:end + 1 if end >= 0 else len(message)])[:200]
            message[position:position] = line * draw(st.integers(1, 2000))
        elif kind == "drop newlines":
            message = bytearray(bytes(message).replace(b"\n", b" ", draw(st.integers(1, 50))))
        del message[MAX_MUTATED_SIZE:]
    return bytes(message)


@PROPERTY_SETTINGS
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _check(data)


@PROPERTY_SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes_after_header(data):
    _check(b"From: MAILER-DAEMON@mail.example.com\nSubject: Undelivered Mail\n" + data)


@PROPERTY_SETTINGS
@given(mutated_bounces())
def test_mutated_bounces(data):
    _check(data)


@PROPERTY_SETTINGS
@given(mutated_bounces())
def test_mutated_bounces_as_text(data):
    _check(data.decode("latin-1"))
