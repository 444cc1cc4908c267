"""The HTTP app: the service's parts started with it, a router per resource, every error as JSON."""

import json
import logging
import re
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException  # FastAPI's is a subclass; routing's 404/405 are this one

from serve import metrics
from serve.config import ServeConfig
from serve.routers import health, media, models, reports, review, uploads
from serve.schemas import documented, error_response
from serve.service import Service
from serve.store.tables import Conflict, Missing


class RedactTokens(logging.Filter):
    """Signed media links carry a token in their query: the access log shows the path without it."""

    TOKEN = re.compile(r"([?&]token=)[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.TOKEN.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args)
        return True


REDACT_TOKENS = RedactTokens()


def create_app(cfg: ServeConfig) -> FastAPI:
    service = Service(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        logging.getLogger("uvicorn.access").addFilter(REDACT_TOKENS)  # after uvicorn set up its logging
        await run_in_threadpool(service.start)
        yield
        await run_in_threadpool(service.stop)

    app = FastAPIOffline(title="deepfake-detector", version="1", lifespan=lifespan,  # /docs without a CDN
                         responses=documented(401, 403, 422),
                         generate_unique_id_function=lambda route: route.name)  # operation ids: the routes' names
    app.state.service = service
    app.add_middleware(metrics.Measure)
    for resource in (uploads, review, media, reports, models, health):
        app.include_router(resource.router)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error_response(exc.status_code, None, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(Conflict)  # the routes that can raise it document their 409
    async def conflict(request: Request, exc: Conflict):
        return error_response(409, "conflict", str(exc))

    @app.exception_handler(Missing)  # the routes that can raise it document their 404
    async def missing(request: Request, exc: Missing):
        return error_response(404, None, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        # what was wrong, not the input echoed back: it may be huge, or text no UTF-8 body can carry
        errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
        return error_response(422, "invalid_request", json.loads(json.dumps(errors, default=str)))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        return error_response(500, "internal_error", type(exc).__name__)

    return app
