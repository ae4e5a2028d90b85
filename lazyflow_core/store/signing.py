"""Seals on stored values: an HMAC signature with a key, or a plain checksum without one.

Stored values are pickles, and unpickling runs code the pickle names. In a shared store
(a team's PostgreSQL cache) anyone who can write one row could make every reader run
their code, so with a *signing key* every value is stored with an HMAC-SHA256 over its
pickled bytes, and a value is unpickled only if its signature verifies with one of the
reader's keys. Without a key, a value is stored with a checksum of its bytes instead,
which catches damage (a truncated blob, a row overwritten with another value's pickle)
but not an attacker, who can recompute it.

A seal is text in the ``lf_values.signature`` column:

- ``s1:KEYID:MAC``: signed. ``KEYID`` names the key (8 hex digits of a hash of it: it
  tells keys apart without revealing them), ``MAC`` is the URL-safe base64 HMAC-SHA256.
- ``c1:DIGEST``: a checksum (the first 16 bytes of a SHA-256, base64).

Both cover the value hash as well as the bytes (``lazyflow value`` + hash + bytes), so
a sealed pickle moved to another value's row does not verify there.

Keys come from ``Scheduler(signing_key=...)`` (a string or a list), else from
``LAZYFLOW_SIGNING_KEY`` (one key, or several separated by commas, newest first: the
first signs, all verify, which is how a key is rotated), else from the key reference in
the project's config file (``signing_key = "env:NAME"`` or ``"file:PATH"``; see
`resolve_keys`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

from ..errors import LazyflowError, StoreError

# The checksum is computed by the batch writer (which the writer process runs without
# the lazyflow package): its format lives there.
from .batch_write import CHECKSUM, ONE_SHOT, SEAL_DOMAIN, checksum, checksum_digest
from .batch_write import b64 as _b64

ENV_VAR = "LAZYFLOW_SIGNING_KEY"
MIN_KEY_CHARS = 16
SIGNED = "s1"
_HOW = (
    "use at least 16 random characters, e.g. from "
    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
)


class SigningKeyError(LazyflowError):
    """A signing key (or a reference to one) is unusable."""


class UnverifiedValue(StoreError):
    """A stored value was not loaded because its seal does not verify."""


class MissingValue(StoreError, KeyError):
    """The store has no value with the hash asked for. A `KeyError` too, for code that
    treats the store as a mapping (``except KeyError``)."""

    def __str__(self) -> str:  # KeyError's would show the message's repr
        return str(self.args[0]) if self.args else ""


def key_id(key: bytes) -> str:
    """A short public name for a key (shown in seals and ``lazyflow db info``)."""
    return hashlib.sha256(b"lazyflow signing key id\x00" + key).hexdigest()[:8]


def _message_digest(value_hash: str, data: bytes, mac: hmac.HMAC | None) -> bytes:
    """HMAC-SHA256 of the message with `mac` (a keyed HMAC, copied: the key is hashed
    into it once, not per value), or its checksum (a SHA-256 cut to 16 bytes)."""
    if mac is None:
        return checksum_digest(value_hash, data)
    h = mac.copy()
    head = SEAL_DOMAIN + value_hash.encode("ascii") + b"\x00"
    if len(data) <= ONE_SHOT:  # most values: one call
        h.update(head + data)
    else:  # fed in parts, so that a large value's bytes are not copied
        h.update(head)
        h.update(data)
    return h.digest()


class SigningKeys:
    """The keys values are signed and verified with: the first signs, all verify."""

    __slots__ = ("_macs", "ids", "keys")

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise SigningKeyError(f"no signing key given; {_HOW}")
        self.keys = tuple(keys)
        self.ids = [key_id(k) for k in self.keys]  # newest (the signing key) first
        self._macs = {key_id(k): hmac.new(k, digestmod="sha256") for k in self.keys}

    def __repr__(self) -> str:  # never the keys themselves
        return f"SigningKeys(ids={self.ids})"

    def seal(self, value_hash: str, data: bytes) -> str:
        """The ``s1:`` seal of `data` stored as value `value_hash`, with the newest key."""
        kid = self.ids[0]
        return f"{SIGNED}:{kid}:{_b64(_message_digest(value_hash, data, self._macs[kid]))}"

    def verify(self, value_hash: str, data: bytes, seal: str | None) -> str | None:
        """None if `seal` is a valid signature of `data` by one of these keys, else why not."""
        if not seal or not seal.startswith(SIGNED + ":"):
            return "it is not signed"
        _, kid, mac = [*seal.split(":", 2), "", ""][:3]
        base = self._macs.get(kid)
        if base is None:
            return f"it is signed with key {kid!r}, which is not one of this run's keys"
        if not hmac.compare_digest(mac, _b64(_message_digest(value_hash, data, base))):
            return "its signature does not match its bytes (tampered with or damaged)"
        return None


def check(keys: SigningKeys | None, value_hash: str, data: bytes, seal: str | None) -> str | None:
    """Whether stored bytes may be unpickled: None if so, else the reason they may not.

    With keys, only a valid signature will do. Without, a checksum must match where one
    was recorded; values stored before seals existed, or signed by someone else (the
    reader cannot check a signature without the key), are trusted as they always were.
    """
    if keys is not None:
        return keys.verify(value_hash, data, seal)
    # Called for every cache hit: the seal's text after ``c1:`` is compared with the
    # encoded checksum directly, without formatting a whole seal to compare with.
    if (
        seal
        and seal.startswith(_CHECKSUM_HEAD)
        and not hmac.compare_digest(
            seal[_CHECKSUM_CUT:], _b64(_message_digest(value_hash, data, None))
        )
    ):
        return "its bytes do not match their checksum (damaged or replaced)"
    return None


_CHECKSUM_HEAD = CHECKSUM + ":"
_CHECKSUM_CUT = len(_CHECKSUM_HEAD)


def check_signed(
    keys: SigningKeys | None, value_hash: str, data: bytes, seal: str | None
) -> str | None:
    """Like `check`, for readers that load values only on request (``--values``): a value
    must be signed, and a reader without a key can verify nothing."""
    if keys is None:
        return f"no signing key is configured, so its signature cannot be verified (set {ENV_VAR})"
    return keys.verify(value_hash, data, seal)


def seal(keys: SigningKeys | None, value_hash: str, data: bytes) -> str:
    """The seal to store with `data`: a signature with keys, else a checksum."""
    return keys.seal(value_hash, data) if keys is not None else checksum(value_hash, data)


# -- where keys come from ------------------------------------------------------------------
def parse_keys(spec: str | Sequence[str | bytes] | SigningKeys | None) -> SigningKeys | None:
    """Keys from a comma-separated string (newest first), a list, or None (no keys)."""
    if spec is None or isinstance(spec, SigningKeys):
        return spec
    if isinstance(spec, str | bytes):
        text = spec.decode() if isinstance(spec, bytes) else spec
        parts: list[str | bytes] = [p for p in (s.strip() for s in text.split(",")) if p]
        if not parts:
            raise SigningKeyError(f"the signing key is empty; {_HOW}")
    else:
        parts = list(spec)
    keys: list[bytes] = []
    for i, part in enumerate(parts, 1):
        raw = part if isinstance(part, bytes) else str(part).strip().encode()
        if len(raw) < MIN_KEY_CHARS:
            raise SigningKeyError(
                f"signing key #{i} has {len(raw)} characters, too short to sign with; {_HOW}"
            )
        keys.append(raw)
    return SigningKeys(tuple(keys))


def keys_from_env(environ: dict[str, str] | None = None) -> SigningKeys | None:
    """The keys in ``LAZYFLOW_SIGNING_KEY``, or None when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if not value:
        return None
    try:
        return parse_keys(value)
    except SigningKeyError as exc:
        raise SigningKeyError(f"{ENV_VAR}: {exc}") from None


def resolve_keys(
    explicit: str | Sequence[str | bytes] | SigningKeys | None = None,
) -> SigningKeys | None:
    """The keys a store uses: `explicit` (``Scheduler(signing_key=...)``), else
    ``LAZYFLOW_SIGNING_KEY``, else the key the project's config file refers to
    (``signing_key = "env:NAME"`` or ``"file:PATH"``), else None (no signing)."""
    if explicit is not None:
        return parse_keys(explicit)
    keys = keys_from_env()
    if keys is not None:
        return keys
    from ..config import find_config

    config = find_config()
    if config is None:
        return None
    text = config.read_signing_key()  # a ConfigError if what it refers to is not there
    if not text:
        return None
    try:
        return parse_keys(text.replace("\n", ","))  # a key file may hold one key a line
    except SigningKeyError as exc:
        raise SigningKeyError(f"{config.label}: signing_key: {exc}") from None
