"""The maintainer's test secret: keyed derivation of the hidden test split.

Train and val shapes are public: their generator seeds come from the benchmark seed
(`svr.data.layout.shape_seed`, always below 2^32), so anyone can rebuild them and train.
The test split of a leaderboard's benchmark must not be rebuildable, so with a secret its
shapes come from HMAC-SHA256 keyed by the secret:

- generator seed of test shape `index` of `class`: the first 16 bytes of
  HMAC(secret, "svr-test-seed/<class>/<index>") with the top bit set, a 128-bit integer
  at least 2^127, so it can never equal a public seed (all below 2^32) and cannot be
  found without the secret;
- shape id: 16 hex digits of HMAC(secret, "svr-test-id/<class>/<index>"), a separate
  derivation, so an id says nothing about the shape's parameters;
- fingerprint: 12 hex digits of HMAC(secret, "svr-test-fingerprint"), written into
  benchmark.json so that a maintainer (and the app) can tell which secret built a test split
  without storing the secret.

A secret is at least 16 characters (32 random bytes as hex from `make_secret` is the
recommended form). It comes from the environment variable SVR_TEST_SECRET (a Space secret)
or a file (`python -m svr.data build ... --test-secret-file FILE`); it is never written into
the benchmark, logs or error messages.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MIN_SECRET_CHARS", "TestSecret", "make_secret", "write_secret_file"]

MIN_SECRET_CHARS = 16
_TOP_BIT = 1 << 127


@dataclass(frozen=True, repr=False)
class TestSecret:
    """A maintainer's secret (never shown by repr or str)."""

    __test__ = False  # not a pytest test class, despite its name

    value: bytes

    def __post_init__(self) -> None:
        if len(self.value.strip()) < MIN_SECRET_CHARS:
            raise ValueError(
                f"the test secret must be at least {MIN_SECRET_CHARS} characters; make one with "
                "`python -m svr.data secret --out FILE`"
            )

    def __repr__(self) -> str:
        return f"TestSecret(fingerprint={self.fingerprint})"

    __str__ = __repr__

    @classmethod
    def from_text(cls, text: str) -> TestSecret:
        """A secret from text (surrounding whitespace and newlines dropped)."""
        return cls(text.strip().encode("utf-8"))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TestSecret:
        """Read a secret file (as written by `write_secret_file`)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no test secret file at {p}")
        if p.stat().st_size > 4096:
            raise ValueError(f"{p.name} is not a test secret file (over 4 KB)")
        return cls.from_text(p.read_text(encoding="utf-8"))

    def _mac(self, label: str) -> bytes:
        return hmac.new(self.value, label.encode("utf-8"), hashlib.sha256).digest()

    def shape_seed(self, class_name: str, index: int) -> int:
        """Generator seed of test shape `index` of `class_name`: an int in [2^127, 2^128)."""
        return int.from_bytes(self._mac(f"svr-test-seed/{class_name}/{index}")[:16], "big") | (
            _TOP_BIT
        )

    def shape_id(self, class_name: str, index: int, attempt: int = 0) -> str:
        """16 hex digits naming test shape `index` of `class_name` (opaque without the secret).

        `attempt` > 0 re-derives the id after a (vanishingly unlikely) collision."""
        suffix = f"#{attempt}" if attempt else ""
        return self._mac(f"svr-test-id/{class_name}/{index}{suffix}")[:8].hex()

    @property
    def fingerprint(self) -> str:
        """12 hex digits identifying the secret (safe to publish)."""
        return self._mac("svr-test-fingerprint")[:6].hex()


def make_secret() -> str:
    """A new random secret: 32 bytes from the OS's CSPRNG as 64 hex digits."""
    return secrets.token_hex(32)


def write_secret_file(path: str | os.PathLike) -> TestSecret:
    """Write a new secret to `path` (readable by the owner only); refuses to overwrite."""
    p = Path(path)
    if p.exists():
        raise FileExistsError(
            f"{p} exists; a new secret would replace the old one - remove it first"
        )
    p.parent.mkdir(parents=True, exist_ok=True)
    text = make_secret()
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return TestSecret.from_text(text)
