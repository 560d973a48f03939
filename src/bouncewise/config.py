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


DEFAULT_LIMITS = Limits()
