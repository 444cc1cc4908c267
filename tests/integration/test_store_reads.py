"""On SQLite a read takes no writer lock: it goes on while another connection writes."""

from __future__ import annotations

import threading

from serve.store import Store


def test_a_read_does_not_wait_for_a_writer(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    up = store.uploads.add("a" * 64, 1, "image", None, {}, None, None, "t")[0]
    got = []
    with store.engine.begin() as writing:  # holds SQLite's writer lock (BEGIN IMMEDIATE) until the block ends
        writing.exec_driver_sql("UPDATE uploads SET attempts = 1")
        reader = threading.Thread(target=lambda: got.append(store.uploads.get(up["id"])["attempts"]))
        reader.start()
        reader.join(timeout=10)  # a reader that took the writer lock would wait out busy_timeout (30 s)
        assert got == [0]  # the committed state, read at once
