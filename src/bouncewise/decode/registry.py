"""The order in which decoders are tried: the first that recognises a message decodes it.

Format-specific decoders come first because they know their MTA's quirks; the RFC 3464 and ARF
decoders read any standard report; the plain-text decoder is the fallback for failures; and
automatic replies are tried last, because many bounces also carry `Auto-Submitted`.
"""

from bouncewise.decode import arf, autoreply, rfc3464, text

DECODERS = [
    rfc3464,
    arf,
    text,
    autoreply,
]
