"""Value seals: HMAC signatures with a key id, checksums without a key, key rotation and
where keys come from (LAZYFLOW_SIGNING_KEY, a list, a config file's key reference)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from lazyflow_core import LazyflowError
from lazyflow_core.store.signing import (
    SigningKeyError,
    check,
    check_signed,
    checksum,
    key_id,
    keys_from_env,
    parse_keys,
    resolve_keys,
    seal,
)

OLD = "old-key-0123456789abcdef"
NEW = "new-key-fedcba9876543210"
H = "ab" * 20
DATA = pickle.dumps([1, 2, 3], protocol=5)


def test_a_signature_names_its_key_and_verifies_only_for_its_bytes_and_hash() -> None:
    keys = parse_keys(NEW)
    assert keys is not None
    sig = keys.seal(H, DATA)
    assert sig.startswith(f"s1:{key_id(NEW.encode())}:") and len(sig) <= 64
    assert keys.verify(H, DATA, sig) is None
    assert "does not match" in str(keys.verify(H, DATA + b"x", sig))
    # the same bytes planted under another value's row do not verify there
    assert "does not match" in str(keys.verify("cd" * 20, DATA, sig))
    assert "not signed" in str(keys.verify(H, DATA, None))
    assert "not signed" in str(keys.verify(H, DATA, checksum(H, DATA)))


def test_rotation_the_first_key_signs_and_every_key_verifies() -> None:
    old_only = parse_keys(OLD)
    rotated = parse_keys(f"{NEW}, {OLD}")
    assert old_only is not None and rotated is not None
    assert rotated.ids == [key_id(NEW.encode()), key_id(OLD.encode())]
    signed_before = old_only.seal(H, DATA)
    assert rotated.verify(H, DATA, signed_before) is None  # old values stay readable
    signed_after = rotated.seal(H, DATA)
    assert signed_after.split(":")[1] == key_id(NEW.encode())
    # once the old key is dropped, what only it signed is no longer trusted
    new_only = parse_keys([NEW])
    assert new_only is not None
    assert new_only.verify(H, DATA, signed_after) is None
    assert "not one of this run's keys" in str(new_only.verify(H, DATA, signed_before))


def test_without_a_key_a_checksum_catches_damage_and_old_rows_are_trusted() -> None:
    assert seal(None, H, DATA) == checksum(H, DATA)
    assert check(None, H, DATA, checksum(H, DATA)) is None
    other = pickle.dumps(12345, protocol=5)  # a valid pickle of a different value
    assert "checksum" in str(check(None, H, other, checksum(H, DATA)))
    assert check(None, H, DATA, None) is None  # stored before seals existed
    keys = parse_keys(NEW)
    assert check(None, H, DATA, seal(keys, H, DATA)) is None  # cannot check: trusted
    assert "not signed" in str(check(keys, H, DATA, checksum(H, DATA)))
    # read-only tools load only what is signed, and without a key nothing verifies
    assert "no signing key" in str(check_signed(None, H, DATA, seal(keys, H, DATA)))
    assert check_signed(keys, H, DATA, seal(keys, H, DATA)) is None


def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAZYFLOW_SIGNING_KEY", raising=False)
    assert keys_from_env() is None
    monkeypatch.setenv("LAZYFLOW_SIGNING_KEY", f"{NEW},{OLD}")
    keys = keys_from_env()
    assert keys is not None and keys.keys == (NEW.encode(), OLD.encode())
    assert NEW not in repr(keys)  # never printed
    monkeypatch.setenv("LAZYFLOW_SIGNING_KEY", f"{NEW},short")
    with pytest.raises(SigningKeyError, match=r"LAZYFLOW_SIGNING_KEY: signing key #2 has 5"):
        keys_from_env()
    assert issubclass(SigningKeyError, LazyflowError)


def test_keys_come_from_the_argument_else_the_environment_else_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config file holds a reference (env:NAME or file:PATH), never the key itself."""
    monkeypatch.delenv("LAZYFLOW_SIGNING_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_keys() is None
    (tmp_path / "team.key").write_text(f"{NEW}\n{OLD}\n")
    (tmp_path / "lazyflow.toml").write_text('signing_key = "file:team.key"\n')
    from_file = resolve_keys()
    assert from_file is not None and from_file.keys == (NEW.encode(), OLD.encode())
    monkeypatch.setenv("LAZYFLOW_SIGNING_KEY", OLD)
    from_env = resolve_keys()
    assert from_env is not None and from_env.keys == (OLD.encode(),)
    explicit = resolve_keys([NEW])
    assert explicit is not None and explicit.keys == (NEW.encode(),)
    monkeypatch.delenv("LAZYFLOW_SIGNING_KEY")
    (tmp_path / "lazyflow.toml").write_text('signing_key = "env:TEAM_LAZYFLOW_KEY"\n')
    with pytest.raises(LazyflowError, match="TEAM_LAZYFLOW_KEY is not set"):
        resolve_keys()
    monkeypatch.setenv("TEAM_LAZYFLOW_KEY", "short")
    with pytest.raises(SigningKeyError, match=r"lazyflow\.toml: signing_key: signing key #1 has 5"):
        resolve_keys()
