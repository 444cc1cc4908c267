"""The server's parts that every route shares: store, files, engine, webhooks, retention; started and
stopped with the app."""

import logging
import time

from serve import metrics
from serve.config import ServeConfig
from serve.engine import Engine
from serve.files import FileStore
from serve.retention import Sweeper
from serve.store import Store
from serve.webhooks import Sender

log = logging.getLogger("serve.service")


class Service:
    def __init__(self, cfg: ServeConfig):
        self.cfg = cfg
        self.store = Store(cfg.database_url)
        self.files = FileStore(cfg.store_dir)
        self.engine: Engine | None = None
        self.sender: Sender | None = None
        self.sweeper: Sweeper | None = None

    def start(self) -> None:
        self.store.migrate()
        for name, key in self.cfg.api_keys.items():
            self.store.keys.add(name, key.roles, key.key)
        if not self.store.keys.count():
            log.warning("no API keys: every call will answer 401; create one with `deepfake-detect api-key`")
        self.engine = Engine(self.cfg, self.store, self.files)
        self.engine.start()
        self.sender = Sender(self.cfg.webhooks, self.store)
        self.sender.start()
        self.sweeper = Sweeper(self.store, self.files, self.cfg.retention)
        self.sweeper.start()
        metrics.QUEUED.set_function(lambda: self.store.uploads.count("queued"))
        for state in ("pending", "claimed"):
            metrics.REVIEW_ITEMS.labels(state).set_function(lambda state=state: self.store.review.count(state))
        metrics.REVIEW_OLDEST.set_function(lambda: time.time() - (self.store.review.oldest_pending() or time.time()))

    def stop(self) -> None:
        for part in (self.sweeper, self.sender, self.engine):
            if part:
                part.stop()
