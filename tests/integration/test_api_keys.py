"""API keys that expire and can be revoked; listed without their secrets."""

from __future__ import annotations

import time

import yaml

from detector.cli import main
from serve.store import Store


def test_an_expired_or_revoked_key_stops_working_and_the_list_never_shows_a_key(tmp_path, capsys):
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"database_url": f"sqlite:///{tmp_path / 'serve.db'}",
                                      "store_dir": str(tmp_path / "store")}))
    assert main(["api-key", "--config", str(config), "--name", "alice", "--roles", "review", "--expires-days", "30"]) == 0
    alice = capsys.readouterr().out.strip()
    store = Store(f"sqlite:///{tmp_path / 'serve.db'}")
    assert store.keys.find(alice) == ("alice", {"review"})
    old = store.keys.add("bob", ["submit"], expires_at=time.time() - 1)  # expired a second ago
    assert store.keys.find(old) is None

    assert main(["api-key", "--config", str(config), "--list"]) == 0
    listed = capsys.readouterr().out
    assert listed.splitlines()[0].startswith("alice\treview\tcreated ") and "expires 20" in listed
    assert alice not in listed and store.keys.get("alice")[0] not in listed  # neither the key nor its hash

    assert main(["api-key", "--config", str(config), "--revoke", "alice"]) == 0
    assert store.keys.find(alice) is None
    assert main(["api-key", "--config", str(config), "--revoke", "alice"]) == 2  # nothing left to revoke
    assert "no key of 'alice' to revoke" in capsys.readouterr().err
