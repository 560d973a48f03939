"""Signed VERP return paths: a bounce address that names the recipient and an application tag.

An application that sends to alice@example.org for its user 42 uses a return path such as

    bounces+mfwgsy3fibsxqylnobwgkltpojtqunbs.ec5uppqqh6qhmfmr@bounce.example.org

The part after "+" is a token: base32 of the recipient and tag, then a dot and base32 of the
first 10 bytes of their HMAC-SHA256 under a secret key. A bounce to that address is attributed to
alice@example.org and user 42 even when the bounce names no recipient. Base32 in lower case survives
mail systems that change the case of local parts. Anyone can write an address, so a token whose
signature does not verify is refused, never trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

__all__ = ["VerpToken", "VerpError", "encode", "decode", "find_token"]

# Bytes of the HMAC kept in the token: 80 bits, ample against forgery by guessing.
SIGNATURE_BYTES = 10

# Separator of recipient and tag inside the signed payload; neither may contain it.
_SEPARATOR = "\n"

# Maximum tag length, because the local part is long already.
MAX_TAG_LENGTH = 64


class VerpError(ValueError):
    """A VERP address that is malformed, or whose signature does not verify."""


@dataclass(frozen=True, slots=True)
class VerpToken:
    """Contents of a valid VERP address."""

    recipient: str
    tag: str = ""


def encode(recipient: str, secret: str, bounce_domain: str, tag: str = "",
           prefix: str = "bounces") -> str:
    """Return the signed VERP return path for mail to `recipient` with application `tag`."""
    if not secret:
        raise VerpError("no VERP secret is configured")
    if "@" not in recipient or _SEPARATOR in recipient or _SEPARATOR in tag:
        raise VerpError(f"invalid recipient address {recipient!r}")
    if len(tag) > MAX_TAG_LENGTH:
        raise VerpError(f"tag longer than {MAX_TAG_LENGTH} characters")

    payload = (recipient.lower() + _SEPARATOR + tag).encode("utf-8")
    signature = _sign(payload, secret)
    return f"{prefix}+{_b32(payload)}.{_b32(signature)}@{bounce_domain}"


def decode(address: str, secrets: list[str], prefix: str = "bounces") -> VerpToken:
    """Return the recipient and tag of a VERP `address`, checked against any of `secrets`.

    Several secrets allow a key change: the new one signs, the old ones still verify.
    Raises VerpError for an address that is not ours or whose signature does not verify.
    """
    local = address.strip().strip("<>").rpartition("@")[0].lower()
    start = f"{prefix.lower()}+"
    if not local.startswith(start):
        raise VerpError(f"not a VERP address: {address!r}")
    encoded_payload, dot, encoded_signature = local[len(start):].partition(".")
    if not dot:
        raise VerpError(f"VERP token without a signature: {address!r}")
    try:
        payload = _unb32(encoded_payload)
        signature = _unb32(encoded_signature)
    except (binascii.Error, ValueError) as error:
        raise VerpError(f"malformed VERP token in {address!r}") from error

    if not any(hmac.compare_digest(signature, _sign(payload, secret)) for secret in secrets):
        raise VerpError(f"VERP signature does not verify: {address!r}")
    recipient, _, tag = payload.decode("utf-8", "replace").partition(_SEPARATOR)
    return VerpToken(recipient, tag)


def find_token(addresses: list[str], prefix: str = "bounces") -> str:
    """Return the first of `addresses` that looks like a VERP address of ours, or ""."""
    start = f"{prefix.lower()}+"
    for address in addresses:
        if address.strip().strip("<>").lower().startswith(start):
            return address.strip().strip("<>")
    return ""


def _sign(payload: bytes, secret: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _unb32(text: str) -> bytes:
    """Decode base32 without padding, and raise ValueError unless `text` is the one encoding
    of its bytes. So no character of a token can change unnoticed."""
    padding = "=" * (-len(text) % 8)
    data = base64.b32decode(text.upper() + padding)
    if _b32(data) != text:
        raise ValueError("not the canonical encoding")
    return data
