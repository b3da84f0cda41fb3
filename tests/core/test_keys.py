"""Per-purpose keys from one master secret, and weak master secrets refused (issue 9.5)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from watchfloor.core.keys import (
    GENERATE_HINT,
    WeakKeyError,
    check_master,
    derive_keys,
    hkdf,
)
from watchfloor.keys import load_keys, master_secret
from watchfloor.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("ikm", "salt", "info", "length", "okm"),
    [  # RFC 5869, appendix A, test cases 1-3
        ("0b" * 22, "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42,
         "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
         "34007208d5b887185865"),
        ("".join(f"{i:02x}" for i in range(0x00, 0x50)),
         "".join(f"{i:02x}" for i in range(0x60, 0xB0)),
         "".join(f"{i:02x}" for i in range(0xB0, 0x100)), 82,
         "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
         "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
         "cc30c58179ec3e87c14c01d5c1f3434f1d87"),
        ("0b" * 22, "", "", 42,
         "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
         "9d201395faa4b61a96c8"),
    ],
)
def test_hkdf_matches_rfc_5869(ikm: str, salt: str, info: str, length: int, okm: str) -> None:
    got = hkdf(bytes.fromhex(ikm), bytes.fromhex(info), length, salt=bytes.fromhex(salt))
    assert got.hex() == okm


def test_each_purpose_has_its_own_key() -> None:
    master = secrets.token_hex(32).encode()
    keys = derive_keys(master)
    assert len({keys.pseudonym, keys.checkpoint, keys.audit, master}) == 4
    assert derive_keys(master) == keys  # stable: pseudonyms survive restarts
    other = derive_keys(secrets.token_hex(32).encode())
    assert {keys.pseudonym, keys.checkpoint, keys.audit}.isdisjoint(
        {other.pseudonym, other.checkpoint, other.audit}
    )
    assert master.decode() not in repr(keys) and keys.checkpoint.hex() not in repr(keys)


def _shipped_example() -> str:
    text = (ROOT / "deploy/kubernetes/secret.example.yaml").read_text()
    match = re.search(r'pseudonym-key:\s*"([^"]+)"', text)
    assert match, "the example secret moved: keep KNOWN_EXAMPLES in step with deploy/"
    return match.group(1)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("too-short-but-random-Zq8", "bytes, need at least 32"),
        ("k" * 64, "too little entropy"),
        ("ab" * 32, "too little entropy"),
        ("0123" * 16, "too little entropy"),
        (secrets.token_hex(16), "too little entropy"),  # 32 hex digits: 128 bits at most
        (_shipped_example(), "example value"),
        ("integration-test-key-not-secret", "example value"),
    ],
)
def test_weak_master_secrets_are_refused_naming_the_variable(value: str, reason: str) -> None:
    with pytest.raises(WeakKeyError) as err:
        check_master(value, "WATCHFLOOR_MASTER_KEY")
    message = str(err.value)
    assert reason in message
    assert message.startswith("WATCHFLOOR_MASTER_KEY ")
    assert GENERATE_HINT in message and "\n" not in message
    assert value not in message


def test_generated_secrets_are_accepted() -> None:
    for _ in range(200):
        check_master(secrets.token_hex(32), "X")
        check_master(secrets.token_urlsafe(32), "X")


def test_the_legacy_variable_is_the_master_secret_and_checked_too() -> None:
    master = secrets.token_hex(32)
    assert master_secret(Settings(pseudonym_key=master)) == master.encode()
    with pytest.raises(WeakKeyError, match=r"^WATCHFLOOR_PSEUDONYM_KEY "):
        load_keys(Settings(pseudonym_key="x" * 32))
    # The new name wins when both are set.
    other = secrets.token_hex(32)
    assert master_secret(Settings(master_key=other, pseudonym_key=master)) == other.encode()


def test_a_generated_master_key_is_private_and_stable(tmp_path: Path) -> None:
    first = load_keys(Settings(state_dir=tmp_path))
    path = tmp_path / "master.key"
    assert path.stat().st_mode & 0o077 == 0
    assert load_keys(Settings(state_dir=tmp_path)) == first
    path.write_text("k" * 40)
    with pytest.raises(WeakKeyError, match=r"master\.key"):
        load_keys(Settings(state_dir=tmp_path))


def test_the_worker_refuses_to_start_with_the_shipped_example_key(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        WATCHFLOOR_TOPICS_FILE=str(ROOT / "topics.yaml"),
        WATCHFLOOR_BROKER="kafka://127.0.0.1:1",  # never reached: it stops before
        WATCHFLOOR_STATE_DIR=str(tmp_path),
        WATCHFLOOR_MASTER_KEY=_shipped_example(),
    )
    env.pop("WATCHFLOOR_PSEUDONYM_KEY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "watchfloor.ops.cli", "worker"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "error: WATCHFLOOR_MASTER_KEY is the example value shipped with watchfloor; "
        f"generate one with: {GENERATE_HINT}"
    ], proc.stderr[-2000:]
