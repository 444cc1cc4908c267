"""Reports for trust teams and regulators: what was scored, decided and appealed since a day."""

from datetime import date, datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from serve.deps import Admin, ServiceDep
from serve.reports import report_csv, summary

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.get("/summary", responses={200: {"content": {"text/csv": {}}}})
def report_summary(service: ServiceDep, _: Admin,
                   since: Annotated[date, Query(description="first day counted (UTC)")] = date(1970, 1, 1),
                   format: Literal["json", "csv"] = "json"):
    """Uploads scored, decisions, reviewer agreement with the model, appeals, time in queue."""
    report = summary(service.store, datetime.combine(since, datetime.min.time(), timezone.utc).timestamp())
    if format == "csv":
        return Response(report_csv(report), media_type="text/csv")
    return report
