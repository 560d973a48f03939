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

    # Characters of one recipient's reply text that the phrase tables are matched against.
    max_phrase_text: int = 4096

    # Recipients reported for one message; a bounce that lists more is cut here.
    max_recipients: int = 10_000

    # Recipients of one bounce that are searched for in the notice text one by one. Each search
    # scans the notice, so a DSN's later recipients keep their Diagnostic-Code alone, and the
    # plain-text decoder gives later recipients that its one pass missed the notice's opening.
    max_notice_lookups: int = 100

    # Characters of a plain-text notice read for recipients when it is longer than max_scan_text.
    # Room for about max_recipients lines of 200 characters; each recipient's text is still cut.
    max_recipient_list_text: int = 2 * 1024 * 1024

    # Bytes kept of the header fields that list failed recipients (X-Failed-Recipients), over all
    # of them in one header block. They do not count against max_header_size or max_line_length.
    max_address_list_size: int = 1024 * 1024

    # Characters kept of one recipient's diagnostic or of one server reply read from a notice.
    max_diagnostic_length: int = 2000

    # Characters of a notice kept as the diagnostic where the notice has no reply to cut out (fml).
    max_notice_summary_length: int = 1000

    # Lines read of a notice by the decoders that walk it line by line (Gmail, Sendmail V5, ...).
    max_notice_lines: int = 2000

    # Lines read of a notice whose format states the failure near its top (Verizon, Apache James).
    max_short_notice_lines: int = 500

    # Lines of a notice read after a recipient's mention to collect the paragraph about it.
    max_paragraph_lines: int = 12

    # Lines of reply text kept for one recipient of a Yahoo notice.
    max_reply_lines: int = 20

    # Lines of a text body searched for DSN fields written into it instead of into their own part.
    max_embedded_report_lines: int = 5000

    # Bytes of a text part searched for a Feedback-Type field.
    max_report_scan: int = 4096

    # Characters of a DSN field name; a longer "name:" is read as text, not as a field.
    max_field_name_length: int = 64

    # Characters of the type of a typed DSN value, such as "smtp" in "smtp; 550 ...".
    max_value_type_length: int = 40

    # Characters read of one line when looking for the address it starts with.
    max_address_scan: int = 400


DEFAULT_LIMITS = Limits()


# Settings of `bouncewise classify --jobs N`, which sends messages to worker processes in batches.

# Messages sent to a worker at once: enough to amortise the pickling round trip.
PARALLEL_BATCH_SIZE = 32

# Bytes of messages sent to a worker at once; a batch closes at this size or at the count above.
PARALLEL_BATCH_BYTES = 8 * 1024 * 1024

# Batches in flight per worker. Memory held for queued messages stays under about
# jobs * PARALLEL_BATCHES_PER_WORKER * (PARALLEL_BATCH_BYTES + max_message_size).
PARALLEL_BATCHES_PER_WORKER = 4
