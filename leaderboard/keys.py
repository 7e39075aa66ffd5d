"""Per-submitter keys: `python -m leaderboard keys add NAME | list | revoke NAME`.

Off a Hugging Face Space a submitter name is free text. With SVR_REQUIRE_KEYS=1 the
server accepts a submission only with the key a maintainer issued for that name (compared
in its normal form, `leaderboard.identity.name_key`, so `ALICE` uses alice's key). A key is
`svrk_` and 32 random URL-safe characters (192 bits), printed once by `keys add`; the
database keeps its SHA-256 only (a random key of that length needs no slow hash), so a
copy of the database does not reveal keys. Revoking keeps the row (with `revoked_at`) for
the record; adding a key for that name again replaces it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from leaderboard.db import SubmitterKey, utcnow
from leaderboard.errors import ServiceError
from leaderboard.identity import clean_name, name_key

__all__ = ["KeyInfo", "add_key", "revoke_key", "list_keys", "check_key", "KEY_PREFIX"]

KEY_PREFIX = "svrk_"
NAME_MAX = 100


@dataclass(frozen=True)
class KeyInfo:
    """A submitter key as listed (never the key itself)."""

    name: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def add_key(factory: sessionmaker[Session], name: str, replace: bool = False) -> str:
    """Issue a key for `name`; returns it (shown once, stored hashed).

    ServiceError if `name` is not a valid submitter name, or already has an active key and
    `replace` is False (a revoked one is replaced)."""
    display = clean_name(name, "submitter name", NAME_MAX)
    if not display:
        raise ServiceError("give the submitter name the key is for")
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    with factory() as session:
        row = session.scalars(
            select(SubmitterKey).where(SubmitterKey.name_key == name_key(display))
        ).first()
        if row is not None and row.revoked_at is None and not replace:
            raise ServiceError(
                f"{row.name!r} already has a key (issued {row.created_at:%Y-%m-%d}); revoke "
                "it first, or replace it with --replace"
            )
        if row is None:
            row = SubmitterKey(name=display, name_key=name_key(display), key_sha256="")
            session.add(row)
        row.name, row.key_sha256 = display, _digest(key)
        row.created_at, row.revoked_at = utcnow(), None
        session.commit()
    return key


def revoke_key(factory: sessionmaker[Session], name: str) -> bool:
    """Revoke the active key of `name`; False if it has none."""
    with factory() as session:
        row = session.scalars(
            select(SubmitterKey).where(SubmitterKey.name_key == name_key(name.strip()))
        ).first()
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        session.commit()
        return True


def list_keys(factory: sessionmaker[Session]) -> list[KeyInfo]:
    """Every key, by name (active and revoked)."""
    with factory() as session:
        rows = session.scalars(select(SubmitterKey).order_by(SubmitterKey.name)).all()
        return [KeyInfo(r.name, r.created_at, r.revoked_at) for r in rows]


def check_key(factory: sessionmaker[Session], name: str, key: str | None) -> bool:
    """Whether `key` is the active key of `name` (constant-time comparison of digests)."""
    if not key:
        return False
    with factory() as session:
        row = session.scalars(
            select(SubmitterKey).where(SubmitterKey.name_key == name_key(name))
        ).first()
    expected = "0" * 64 if row is None or row.revoked_at is not None else row.key_sha256
    matches = hmac.compare_digest(_digest(key.strip()), expected)
    return matches and row is not None and row.revoked_at is None
