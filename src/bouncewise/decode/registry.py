"""The order in which decoders are tried: the first that recognises a message decodes it.

Format-specific decoders come first, because they know their MTA's quirks. The RFC 3464 and
ARF decoders then read any standard report, and the plain-text decoder is the fallback for
failures. Automatic replies are tried last, because many bounces also carry `Auto-Submitted`.
"""

from bouncewise.decode import arf, autoreply, rfc3464, text
from bouncewise.decode import dma, exchange2003, exim, opensmtpd, qmail
from bouncewise.decode import amazonses, ezweb, gmail, googlegroups, messagingserver, yahoo
from bouncewise.decode import apachejames, fml, sendmail_v5, verizon
from bouncewise.decode import mailman, postfix_smtpd, zoho

DECODERS = [
    # First, so that a bounce a list manager forwards is read as the bounce it attaches.
    mailman,
    gmail,
    googlegroups,
    yahoo,
    amazonses,
    ezweb,
    messagingserver,
    apachejames,
    verizon,
    fml,
    sendmail_v5,
    exim,
    opensmtpd,
    qmail,
    dma,
    exchange2003,
    postfix_smtpd,
    rfc3464,
    arf,
    zoho,
    text,
    autoreply,
]
