"""Shared fixtures: sample media generated in code, and ../shared/data where it exists."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from detector import samples

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_collection_modifyitems(items):
    for item in items:  # tier marks by folder
        for tier in ("unit", "integration"):
            if f"/tests/{tier}/" in str(item.fspath):
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent: real media live beside the checkout, not in it")
    return SHARED_DATA


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """One of each supported format, built from scikit-image's photos."""
    d = tmp_path_factory.mktemp("media")
    face = samples.astronaut()
    for ext in ("jpg", "png", "webp", "bmp", "gif"):
        samples.write_image(d / f"astronaut.{ext}", face)
    samples.write_image(d / "coffee.png", samples.no_face())
    for ext in samples.CONTAINER_CODECS:
        samples.write_video(d / f"pan.{ext}", samples.moving_crop(face, 40), audio=samples.chirp(1.6))
    samples.write_video(d / "silent.mp4", samples.moving_crop(face, 40))
    samples.write_video(d / "coffee.mp4", samples.moving_crop(samples.no_face(), 20))
    for ext in samples.AUDIO_CODECS:
        samples.write_audio(d / f"chirp.{ext}", samples.chirp(2.0))
    return d


@pytest.fixture
def cli(capsys, monkeypatch):
    """`deepfake-detect ARGS...` run in this process: (exit code, stdout, stderr)."""
    from detector.cli import main

    monkeypatch.setenv("COLUMNS", "200")  # rich's tables: no column cut short

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture(scope="session")
def detector():
    from detector.frontend.faces import FaceDetector

    return FaceDetector()


def face_pair(rng, detector) -> tuple:
    """A real photo (the astronaut, cropped and lit at random) and a self-blended fake of it: one uploader's two."""
    import numpy as np

    from detector.demo import blend_face

    shift, light = int(rng.integers(0, 60)), int(rng.integers(-20, 20))
    real = np.ascontiguousarray(np.clip(samples.astronaut()[shift:, shift:].astype(int) + light, 0, 255).astype(np.uint8))
    return real, blend_face(real, detector, rng)


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> tuple[Path, Path]:
    """Untrained but real visual and audio networks, with thresholds that split their scores."""
    import torch

    from detector.bundle import BundleMeta, Thresholds, save_bundle
    from detector.scoring.calibration import Calibration
    from detector.config import AudioConfig
    from detector.models import create_model

    root = tmp_path_factory.mktemp("bundles")
    torch.manual_seed(0)
    net = create_model("timm", backbone="resnet10t")
    visual = save_bundle(root / "visual", net, BundleMeta(
        family="timm", model={"backbone": "resnet10t"}, input_size=64, mean=net.mean.flatten().tolist(),
        std=net.std.flatten().tolist(), thresholds=Thresholds(likely_fake=0.99, review=0.0)))
    audio = save_bundle(root / "audio", create_model("lcnn", width=8), BundleMeta(
        modality="audio", family="lcnn", model={"width": 8}, calibration=Calibration(method="temperature", a=0.5),
        audio=AudioConfig(window_s=1.0, hop_s=0.5), thresholds=Thresholds(likely_fake=1.0, review=1.0)))
    return visual, audio


PG_ADMIN = os.environ.get("DEEPFAKE_TEST_PG", "postgresql+psycopg:///postgres?host=/var/run/postgresql")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test (CI starts the server; elsewhere skipped if absent)."""
    with pg_database() as url:
        yield url


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards: for fixtures of any scope."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            name = f"deepfake_test_{uuid.uuid4().hex[:10]}"
            c.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as e:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN} (.ci/run starts it): {e}")
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN}")
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


class Server:
    """A real `deepfake-detect serve` process on a free port."""

    def __init__(self, cfg: dict, folder: Path):
        self.cfg, self.folder = cfg, folder
        self.port = cfg["port"]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> "Server":
        """Start it and return once uvicorn says it is up (its log is copied to serve-PORT.log)."""
        import yaml

        path = self.folder / f"serve-{self.port}.yaml"
        path.write_text(yaml.safe_dump(self.cfg))
        exe = Path(sys.executable).with_name("deepfake-detect")
        self.log = (self.folder / f"serve-{self.port}.log").open("ab")
        self.proc = subprocess.Popen([str(exe), "serve", "--config", str(path)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        up, started = threading.Event(), threading.Event()

        def copy(out, log) -> None:
            for line in out:
                log.write(line)
                log.flush()
                if b"Application startup complete" in line:
                    started.set()
                    up.set()
            up.set()  # it exited

        self._copy = threading.Thread(target=copy, args=(self.proc.stdout, self.log), daemon=True)
        self._copy.start()
        if not up.wait(timeout):
            raise TimeoutError(self.read_log()[-3000:])
        if not started.is_set():  # its output ended before it was up: it is exiting, if not gone already
            self.proc.wait(timeout=30)
            raise RuntimeError(f"server exited: {self.read_log()[-3000:]}")
        return self

    def as_(self, name: str | None = "uploader"):
        """An httpx client to this server as one key holder (no key: `None`), paths relative to its URL."""
        import httpx

        return httpx.Client(base_url=self.url, headers={"X-API-Key": KEYS[name]} if name else {}, timeout=120)

    def read_log(self) -> str:
        return (self.folder / f"serve-{self.port}.log").read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server and its worker processes (SIGKILL: no chance to clean up)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)
        self._copy.join(timeout=30)  # the log's last lines
        self.log.close()


@contextmanager
def in_process(cfg: dict, **client_kw):
    """The server's app in this process (engine, workers and all) behind FastAPI's TestClient, and its Service."""
    from fastapi.testclient import TestClient

    from serve.api import create_app
    from serve.config import ServeConfig

    app = create_app(ServeConfig.model_validate(cfg))
    with TestClient(app, **client_kw) as client:
        yield client, app.state.service


@contextmanager
def in_process_server(cfg: dict, **client_kw) -> Iterator[SimpleNamespace]:
    """`in_process` as the route tests call it: `cfg` (as the server read it), its Service as `api`, and
    `as_(name)` for requests as one key holder, the same calls as `Server.as_`, with no port."""
    with in_process(cfg, **client_kw) as (test_client, service):
        yield SimpleNamespace(cfg=service.cfg.model_dump(mode="json"), api=service,
                              as_=lambda name="uploader": Caller(test_client, name))


class Caller:
    """Requests to the in-process server as one key holder (no key: `None`)."""

    def __init__(self, test_client, name: str | None):
        self.test_client, self.headers = test_client, {"X-API-Key": KEYS[name]} if name else {}

    def __enter__(self) -> "Caller":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def request(self, method: str, url: str, headers: dict | None = None, **kw):
        return self.test_client.request(method, url, headers=self.headers | (headers or {}), **kw)

    def get(self, url: str, **kw):
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw):
        return self.request("POST", url, **kw)

    def delete(self, url: str, **kw):
        return self.request("DELETE", url, **kw)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"  # Debian's; Playwright drives it
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium through Playwright (skipped where absent, failed under CI)."""
    if not Path(CHROMIUM).exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)("no chromium (.ci/run installs Debian's)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
        yield b
        b.close()


def review_page(browser, server: "Server", reviewer: str, ready: str = "#queue tr.item", bypass_csp: bool = True):
    """The reviewer page signed in with `reviewer`'s key, once `ready` shows in its queue. Playwright
    evaluates the tests' string expressions with eval, which the page's policy forbids: tests bypass
    it unless they test it."""
    page = browser.new_page(viewport={"width": 1366, "height": 900}, bypass_csp=bypass_csp)  # a common laptop screen
    page.goto(f"{server.url}/review")
    page.fill("#key", KEYS[reviewer])
    page.click("#save-key")
    page.wait_for_selector(ready)
    return page


KEYS = {name: f"{name}-key-0123456789abcdef"  # "other": a second `submit` key, where a test registers it
        for name in ("uploader", "alice", "bob", "carol", "dave", "admin", "other", "prometheus")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_config(bundles: tuple[Path, Path], folder: Path, **changes) -> dict:
    """A server's config over the test bundles in `folder`; `changes` replace (dicts: update) entries."""
    cfg = {"port": free_port(), "database_url": f"sqlite:///{folder / 'serve.db'}", "store_dir": str(folder / "store"),
           "visual": str(bundles[0]), "audio": str(bundles[1]), "sampling": {"frames": 8},
           "engine": {"workers": 1, "max_wait_ms": 20, "job_lease_s": 3},
           "webhooks": {"secret": "test-webhook-secret"},
           "api_keys": {name: {"key": KEYS[name], "roles": [role]} for name, role in
                        (("uploader", "submit"), ("alice", "review"), ("bob", "review"), ("carol", "review"),
                                         ("dave", "review"), ("admin", "admin"), ("prometheus", "metrics"))}}
    for k, v in changes.items():
        cfg[k] = cfg[k] | v if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg
