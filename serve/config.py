"""Server settings from configs/serve.yaml; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from detector.config import MediaLimits, SamplingConfig, read_yaml, validate
from detector.scoring.fusion import Fusion
from detector.frontend.provenance import ProvenancePolicy
from detector.scoring.scorer import Decision

Role = Literal["submit", "review", "metrics", "admin"]  # metrics: /metrics only (a Prometheus scraper)
DEFAULT_SECRET = "change-me"


class Settings(BaseModel):
    """A section of serve.yaml: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class EngineConfig(Settings):
    workers: int = Field(2, ge=1)  # decoding + face detection processes
    max_batch_size: int | None = Field(None, ge=1)  # crops or voice windows per model call, across requests;
    # None: 64 on CUDA, 8 on CPU (bigger batches are slower there, bench/batch_size.py)
    max_wait_ms: float = Field(20, ge=0)  # a partly filled batch runs after this long
    max_in_flight: int = Field(16, ge=1)  # uploads claimed by this process at once
    job_lease_s: float = Field(60, gt=0)  # a claimed job whose owner vanished returns to the queue after this
    max_attempts: int = Field(2, ge=1)  # a job whose worker died (once read alone) or lease ran out this often fails
    job_timeout_s: float = Field(600, gt=0)  # reading one upload (frames, faces, sound track, C2PA), at most
    job_deadline_s: float = Field(720, gt=0)  # a claimed job, read and scored, at most: then it fails as `timeout`
    # and its lease is no longer renewed
    model_stall_s: float = Field(60, gt=0)  # a model call running longer makes /readyz answer 503 and stops claims
    admission_timeout_s: float = Field(30, gt=0)  # probing an upload's header before it is accepted, at most
    poll_s: float = Field(0.2, gt=0)  # how often an idle engine looks for queued jobs
    models_poll_s: float = Field(5, gt=0)  # how often it reads the registry's live models (a promotion, a rollback)
    shadow_share: float = Field(1.0, ge=0, le=1)  # uploads a shadow model also scores (recorded only), a share
    device: str = "auto"

    @model_validator(mode="after")
    def _deadline_after_reading(self) -> "EngineConfig":
        if self.job_deadline_s <= self.job_timeout_s:
            raise ValueError(f"job_deadline_s ({self.job_deadline_s:g}) must exceed job_timeout_s ({self.job_timeout_s:g}): "
                             "the models score after the upload is read")
        return self


class ReviewConfig(Settings):
    lease_s: float = Field(300, gt=0)  # a claimed item returns to the queue after this ...
    lease_per_media_s: float = Field(2.0, ge=0)  # ... plus this per second of its media (a 30-minute video: +1 h)
    amend_s: float = Field(600, ge=0)  # a reviewer may change their own decision this long after making it
    queue_decisions: list[Decision] = ["likely_fake", "review"]  # Verdict decisions that need a person
    evidence_crops: int = Field(4, ge=0)  # most suspicious face crops kept for reviewers
    evidence_gap_s: float = Field(3.0, ge=0)  # evidence moments at least this far apart (shorter clips: less)
    preset_reasons: list[str] = Field([  # keys 1-9 on the review page put one in the reason box
        "face boundary blends or flickers between frames", "mouth does not follow the speech",
        "synthetic voice (flat prosody, vocoder artefacts)", "genuine: consistent lighting, motion and sound",
        "model fooled by compression or low light"], max_length=9)


class WebhookConfig(Settings):
    secret: str = DEFAULT_SECRET  # HMAC-SHA256 key; receivers check X-Signature. The server refuses the default
    # unless started for development (`serve --dev` or DEEPFAKE_DEV=1)
    max_attempts: int = Field(8, ge=1)
    backoff_s: float = Field(1.0, gt=0)  # doubles after every failed attempt
    timeout_s: float = Field(5.0, gt=0)  # connecting, and each read
    deadline_s: float = Field(15.0, gt=0)  # one delivery, whole: a receiver that trickles its answer is cut off
    concurrency: int = Field(8, ge=1)  # deliveries at once, one per receiver (host:port): a slow one delays its own
    allow_hosts: list[str] = []  # callback hosts delivered to although they resolve to loopback, private or
    # other non-public addresses (tests, on-premise receivers); every other such callback is refused


class RetentionConfig(Settings):
    """Days each kind of data is kept after upload (None: forever); the audit trail stays."""

    upload_bytes_days: float | None = Field(30, ge=0)
    crops_days: float | None = Field(30, ge=0)
    verdicts_days: float | None = Field(365, ge=0)
    interval_s: float = Field(3600, gt=0)  # how often the sweep runs (and once at start)


class ApiKey(Settings):
    key: str = Field(min_length=16)
    roles: list[Role] = Field(min_length=1)


class ServeConfig(Settings):
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = "sqlite:///var/serve/serve.db"  # or postgresql+psycopg://user@host/db
    store_dir: Path = Path("var/serve/store")  # upload bytes and evidence, content-addressed
    visual: str | None = "starter"  # bundle folders, "starter" (shipped in the package) or none; at least one
    audio: str | None = "starter"
    fusion: Fusion = Fusion()
    sampling: SamplingConfig | None = None  # None: as the visual bundle was trained (32 frames where it does not say)
    limits: MediaLimits = MediaLimits(max_bytes=512 * 1024**2, max_duration_s=1800)
    engine: EngineConfig = EngineConfig()
    review: ReviewConfig = ReviewConfig()
    webhooks: WebhookConfig = WebhookConfig()
    retention: RetentionConfig = RetentionConfig()
    provenance: ProvenancePolicy = ProvenancePolicy()
    max_queued: int = Field(1000, ge=1)  # queued jobs beyond this answer 429
    max_wait_s: float = Field(60, ge=0)  # ceiling for ?wait=
    upload_timeout_s: float = Field(300, gt=0)  # receiving one upload's body, at most (then 408)
    api_keys: dict[str, ApiKey] = {}  # name -> key and roles, for bootstrapping; stored hashed
    metrics_public: bool = False  # True: /metrics answers without a key (else a `metrics` or `admin` key)


def load_serve_config(path: str | Path | None, overrides: dict | None = None) -> ServeConfig:
    data = read_yaml(path) if path else {}
    return validate(ServeConfig, data | (overrides or {}), path)
