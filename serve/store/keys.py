"""API keys: only their hashes are stored, with the holder's name and roles."""

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
    def add(self, name: str, roles: list[str], key: str | None = None) -> str:
        """Store a key's hash with its roles (replacing one of that name); returns the plain key."""
        key = key or secrets.token_urlsafe(24)
        with self.engine.begin() as c:
            c.execute(api_keys.delete().where(api_keys.c.name == name))
            c.execute(api_keys.insert().values(name=name, key_hash=hash_key(key), roles=",".join(roles),
                                               created_at=time.time()))
        return key

    def get(self, name: str) -> tuple[str, set[str]] | None:
        """A key's stored hash and roles, by its holder's name."""
        r = self.one(sa.select(api_keys).where(api_keys.c.name == name))
        return None if r is None else (r["key_hash"], set(r["roles"].split(",")))

    def find(self, key: str) -> tuple[str, set[str]] | None:
        """The holder's name and roles of a plain key; None when no such key is stored."""
        r = self.one(sa.select(api_keys).where(api_keys.c.key_hash == hash_key(key)))
        return None if r is None else (r["name"], set(r["roles"].split(",")))

    def count(self) -> int:
        return self.scalar(sa.select(sa.func.count()).select_from(api_keys))
