"""Limits of the classifier: every bound on hostile input, with its default.

A caller that needs other values builds a `Limits` with `dataclasses.replace(DEFAULT_LIMITS, ...)`
and passes it to `classify` or `iter_classify`.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied while reading one message."""

    # Bytes read of one message; the rest is dropped and the result is marked truncated.
    max_message_size: int = 32 * 1024 * 1024

    # Bytes of one header block (a message's or a MIME part's) that are parsed.
    max_header_size: int = 256 * 1024

    # Nesting depth of multipart and message/rfc822 parts that is walked.
    max_mime_depth: int = 16

    # MIME parts walked in one message, counted over all depths.
    max_mime_parts: int = 512

    # Characters kept of one line of text; longer lines are cut before any pattern reads them.
    max_line_length: int = 8192

    # Characters of decoded notice text that the decoders and the phrase tables scan.
    max_scan_text: int = 256 * 1024

    # Recipients reported for one message; a bounce that lists more is cut here.
    max_recipients: int = 10_000

    # Recipients of one DSN whose reply is also looked up in the human-readable notice. Each
    # lookup scans the notice, so later recipients keep their Diagnostic-Code alone.
    max_notice_lookups: int = 100


DEFAULT_LIMITS = Limits()


# Settings of `bouncewise classify --jobs N`, which sends messages to worker processes in batches.

# Messages sent to a worker at once: enough to amortise the pickling round trip.
PARALLEL_BATCH_SIZE = 32

# Bytes of messages sent to a worker at once; a batch closes at this size or at the count above.
PARALLEL_BATCH_BYTES = 8 * 1024 * 1024

# Batches in flight per worker. Memory held for queued messages stays under about
# jobs * PARALLEL_BATCHES_PER_WORKER * (PARALLEL_BATCH_BYTES + max_message_size).
PARALLEL_BATCHES_PER_WORKER = 4
