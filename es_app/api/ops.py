"""Operations routes: GET /health and GET /metrics (Prometheus text format)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from es_app.projections import read_model_position

from .schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}},
            summary="Is the API up and its database reachable?")
def health(request: Request) -> JSONResponse:
    """200 with positions when the event store answers, 503 with the database error otherwise."""
    es = request.app.state.es
    body: dict[str, Any] = {"mode": "embedded" if es.settings.embedded else "servers"}
    try:
        container = es.get()
        with container.engine.connect() as conn:
            body |= {"status": "ok", "database": "ok", "head_position": container.store.head_position(conn),
                     "read_model_position": read_model_position(conn)}
        return JSONResponse(body)
    except SQLAlchemyError as exc:
        line = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        return JSONResponse(body | {"status": "unavailable", "database": line}, status_code=503)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
def metrics(request: Request) -> Response:
    """Projection lag and position per projection, events appended, parked dead letters, store head."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
