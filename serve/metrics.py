"""Prometheus metrics the server exposes at /metrics."""

from prometheus_client import Counter, Gauge, Histogram

QUEUED = Gauge("deepfake_queue_depth", "Uploads accepted and waiting to be scored (all servers)")
IN_FLIGHT = Gauge("deepfake_in_flight", "Uploads this server is scoring now")
BATCH_SIZE = Histogram("deepfake_batch_size", "Inputs per model call", ["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128))
STAGE = Histogram("deepfake_stage_seconds", "Time per upload in a stage", ["stage"],
                  buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
DECISIONS = Counter("deepfake_decisions_total", "Verdicts by decision", ["decision"])
ERRORS = Counter("deepfake_errors_total", "Uploads that failed, by reason", ["reason"])
REJECTED = Counter("deepfake_rejected_total", "Uploads refused at the door, by HTTP status", ["status"])
WEBHOOKS = Counter("deepfake_webhooks_total", "Webhook delivery attempts by outcome", ["outcome"])
