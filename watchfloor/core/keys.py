"""One master secret, one key per purpose (issue 9.5), and what a master secret must be.

The worker holds one master secret. Nothing signs or pseudonymises with it directly:
every use gets its own key, derived with HKDF-SHA256 (RFC 5869) under a label that names
the purpose, so a key that leaks from one use (an agency's pseudonyms, a checkpoint
signature, an audit anchor) says nothing about the others or about the master.

=================  ==========================================  ============================
purpose            label (HKDF ``info``)                        used by
=================  ==========================================  ============================
``pseudonym``      ``watchfloor/v1/pseudonym``                  agreements (per-agency
                                                                sub-keys), alert ids
``checkpoint``     ``watchfloor/v1/checkpoint-signing``         ``streams.checkpoint``
``audit``          ``watchfloor/v1/audit-anchor``               ``alerts.anchors``
=================  ==========================================  ============================

:func:`check_master` refuses a weak master secret with a one-line error that names the
variable and how to make a good one; no error message ever contains the secret.

>>> keys = derive_keys(bytes.fromhex("9f" * 4 + "0123456789abcdef" * 3 + "a1b2c3d4e5f60718"))
>>> len({keys.pseudonym, keys.checkpoint, keys.audit}), len(keys.checkpoint)
(3, 32)
>>> "9f9f" in repr(keys)
False
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import Counter
from dataclasses import dataclass, field

#: HKDF salt: fixed, public; it only separates watchfloor's derivations from others'.
SALT = b"watchfloor master key derivation"
LABELS = {
    "pseudonym": b"watchfloor/v1/pseudonym",
    "checkpoint": b"watchfloor/v1/checkpoint-signing",
    "audit": b"watchfloor/v1/audit-anchor",
}
MIN_MASTER_BYTES = 32
#: Estimated entropy below which a master secret is refused (bits, see check_master).
MIN_ENTROPY_BITS = 128
#: Example values shipped in deploy/ and the docs: never accepted as a real secret.
KNOWN_EXAMPLES = frozenset(
    {
        "change-me-to-64-hex-characters",
        "change-me",
        "changeme",
        "integration-test-key-not-secret",
        "evaluate-offline",
    }
)
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_hex(32))'"


class WeakKeyError(ValueError):
    """The master secret is too weak to derive keys from (the message names the
    variable, never the value)."""


def hkdf(ikm: bytes, info: bytes, length: int = 32, salt: bytes = SALT) -> bytes:
    """HKDF-SHA256 (RFC 5869): extract with ``salt``, expand to ``length`` bytes.

    RFC 5869, test case 1:

    >>> okm = hkdf(bytes.fromhex("0b" * 22), bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"), 42,
    ...            salt=bytes.fromhex("000102030405060708090a0b0c"))
    >>> okm.hex()[:32]
    '3cb25f25faacd57a90434f64d0362f2a'
    """
    if not 0 < length <= 255 * 32:
        raise ValueError("HKDF-SHA256 output length must be 1..8160 bytes")
    prk = hmac.digest(salt, ikm, hashlib.sha256)
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), hashlib.sha256)
        out += block
        counter += 1
    return out[:length]


@dataclass(frozen=True)
class Keys:
    """The per-purpose keys of one master secret. ``repr`` shows none of them."""

    pseudonym: bytes = field(repr=False)
    checkpoint: bytes = field(repr=False)
    audit: bytes = field(repr=False)

    def __reduce__(self) -> object:
        raise TypeError("Keys hold secrets and cannot be pickled")


def derive_keys(master: bytes) -> Keys:
    """The per-purpose keys of ``master`` (see the module table)."""
    return Keys(**{purpose: hkdf(master, label) for purpose, label in LABELS.items()})


def entropy_bits(secret: bytes) -> float:
    """A pessimistic estimate of the secret's entropy: its length times the Shannon
    entropy of its byte distribution. ``"a" * 64`` scores 0; 64 random hex digits about
    250; a 32-byte random binary key about 160."""
    if not secret:
        return 0.0
    n = len(secret)
    per_byte = sum(c / n * math.log2(n / c) for c in Counter(secret).values())
    return per_byte * n


def check_master(secret: bytes | str, variable: str) -> bytes:
    """``secret`` as bytes if it is fit to be a master secret; else raise
    :class:`WeakKeyError` with a one-line reason naming ``variable``.

    Refused: shorter than 32 bytes, estimated entropy under 128 bits (a repeated or
    trivially patterned value), or one of the example values shipped in ``deploy/``.

    >>> check_master("k" * 32, "WATCHFLOOR_MASTER_KEY")
    Traceback (most recent call last):
    ...
    watchfloor.core.keys.WeakKeyError: WATCHFLOOR_MASTER_KEY has too little entropy (0 bits \
estimated, need 128); generate one with: python -c 'import secrets; print(secrets.token_hex(32))'
    >>> len(check_master("4d1f" * 16, "X"))  # 64 hex characters, a 2-byte pattern
    Traceback (most recent call last):
    ...
    watchfloor.core.keys.WeakKeyError: X has too little entropy (128 bits estimated, need \
128); generate one with: python -c 'import secrets; print(secrets.token_hex(32))'
    """
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    text = raw.decode("utf-8", "replace").strip()
    hint = f"generate one with: {GENERATE_HINT}"
    if text.lower() in KNOWN_EXAMPLES or "change-me" in text.lower():
        raise WeakKeyError(f"{variable} is the example value shipped with watchfloor; {hint}")
    if len(raw) < MIN_MASTER_BYTES:
        raise WeakKeyError(
            f"{variable} is {len(raw)} bytes, need at least {MIN_MASTER_BYTES}; {hint}"
        )
    bits = entropy_bits(raw)
    # Strictly more than the minimum: a value made of a repeated short block sits at it.
    if bits <= MIN_ENTROPY_BITS:
        raise WeakKeyError(
            f"{variable} has too little entropy ({bits:.0f} bits estimated, need "
            f"{MIN_ENTROPY_BITS}); {hint}"
        )
    return raw
