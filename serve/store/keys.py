"""API keys: only their hashes are stored, with the holder's name, roles, expiry and revocation."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import get_args

import sqlalchemy as sa

from serve.config import Role
from serve.store.tables import Repository, api_keys

ROLES = get_args(Role)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys(Repository):
    def add(self, name: str, roles: list[str], key: str | None = None, expires_at: float | None = None) -> str:
        """Store a key's hash with its roles (replacing one of that name); returns the plain key."""
        key = key or secrets.token_urlsafe(24)
        row = dict(name=name, key_hash=hash_key(key), roles=",".join(roles), expires_at=expires_at)
        try:
            self._replace(row)
        except sa.exc.IntegrityError:  # another server stored the same key at that moment (replicas starting
            self._replace(row)          # together with keys in their config): again, after it
        return key

    def _replace(self, row: dict) -> None:
        with self.engine.begin() as c:
            c.execute(api_keys.delete().where((api_keys.c.name == row["name"]) | (api_keys.c.key_hash == row["key_hash"])))
            c.execute(api_keys.insert().values(**row, created_at=time.time()))

    def get(self, name: str) -> tuple[str, set[str]] | None:
        """A key's stored hash and roles, by its holder's name."""
        r = self.one(sa.select(api_keys).where(api_keys.c.name == name))
        return None if r is None else (r["key_hash"], set(r["roles"].split(",")))

    def find(self, key: str) -> tuple[str, set[str]] | None:
        """The holder's name and roles of a plain key; None when no such key is stored, or it expired or was revoked."""
        r = self.one(sa.select(api_keys).where((api_keys.c.key_hash == hash_key(key)) & api_keys.c.revoked_at.is_(None)
                                               & (api_keys.c.expires_at.is_(None) | (api_keys.c.expires_at > time.time()))))
        return None if r is None else (r["name"], set(r["roles"].split(",")))

    def revoke(self, name: str) -> bool:
        """The key of that holder stops working now; False when there is none (or it was revoked before)."""
        with self.engine.begin() as c:
            done = c.execute(api_keys.update().where((api_keys.c.name == name) & api_keys.c.revoked_at.is_(None))
                             .values(revoked_at=time.time()))
        return done.rowcount == 1

    def listed(self) -> list[dict]:
        """Every key's holder, roles and dates (never its hash), by name."""
        return self.all(sa.select(api_keys.c.name, api_keys.c.roles, api_keys.c.created_at, api_keys.c.expires_at,
                                  api_keys.c.revoked_at).order_by(api_keys.c.name))

    def count(self) -> int:
        return self.scalar(sa.select(sa.func.count()).select_from(api_keys))
