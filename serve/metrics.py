"""Prometheus metrics the server exposes at /metrics."""

import time

from prometheus_client import Counter, Gauge, Histogram, Info

QUEUED = Gauge("deepfake_queue_depth", "Uploads accepted and waiting to be scored (all servers)")
IN_FLIGHT = Gauge("deepfake_in_flight", "Uploads this server is scoring now")
BATCH_SIZE = Histogram("deepfake_batch_size", "Inputs per model call", ["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128))
STAGE = Histogram("deepfake_stage_seconds", "Time per upload in a stage", ["stage"],
                  buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
DECISIONS = Counter("deepfake_decisions_total", "Verdicts by decision", ["decision"])
ERRORS = Counter("deepfake_errors_total", "Uploads that failed, by reason", ["reason"])
REJECTED = Counter("deepfake_rejected_total", "Uploads refused at the door, by HTTP status", ["status"])
WEBHOOKS = Counter("deepfake_webhooks_total", "Webhook delivery attempts by outcome", ["outcome"])
REQUESTS = Histogram("deepfake_request_seconds", "HTTP request latency, by route and method", ["route", "method"],
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
REVIEW_ITEMS = Gauge("deepfake_review_items", "Review items waiting for or held by a reviewer (all servers)", ["state"])
REVIEW_OLDEST = Gauge("deepfake_review_oldest_pending_seconds", "Age of the oldest pending review item (0: none)")
MODEL = Info("deepfake_model", "The models this server scores with", ["modality"])
REFUSED = {413, 415, 422, 429}  # answers to POST /v1/uploads counted in REJECTED


class Measure:
    """ASGI middleware: every request's latency by route template, and uploads refused at the door."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # the router notes the route it chose
            REQUESTS.labels(route, scope["method"]).observe(time.perf_counter() - started)
            if route == "/v1/uploads" and scope["method"] == "POST" and status in REFUSED:
                REJECTED.labels(str(status)).inc()
