"""The dashboard's web app: `create_app(settings)`, and `app` for `uvicorn migrator.dashboard:app` (built on first
use from the environment's settings; nothing connects at import).

Pages: the migration (`/`, live through `/fragments/migration`), a user side by side (`/users/{key}`), a user's
timeline with a time-travel slider (`/users/{key}/timeline`), the verify reports (`/reports`, `/reports/{id}`).
The phase actions (`POST /actions/{name}`) need `Authorization: Bearer <DASHBOARD_TOKEN>`.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from es_app.settings import Settings
from migrator.mapping import MappingError

from . import actions, overview, users
from .source import Source

HERE = Path(__file__).parent
ACTOR = "dashboard"
POLL_MS = 1000  # how often the migration page fetches its live part
MAX_BODY = 16 * 1024


class Problem(Exception):
    """A request the dashboard answers with `status` and one line (and, for an action, the unmet guards)."""

    def __init__(self, status: int, detail: str, unmet: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.unmet = status, detail, unmet


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith(("/actions/", "/api/")) or request.method != "GET"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Returns the dashboard for `settings` (the environment's when None), reading its databases per request."""
    source = Source(settings)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["highlighted"] = users.highlighted
    app = FastAPI(title="migrator dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.source = source
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def page(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"actions_on": source.token is not None, **context},
                                          status_code=code)

    def problem(request: Request, status: int, detail: str, unmet: list[dict[str, Any]] | None = None) -> Response:
        if _wants_json(request):
            body: dict[str, Any] = {"detail": detail}
            if unmet is not None:
                body["unmet"] = unmet
            return JSONResponse(body, status_code=status)
        return page(request, "error.html", status, status=status, detail=detail)

    @app.exception_handler(Problem)
    def _problem(request: Request, exc: Problem) -> Response:
        return problem(request, exc.status, exc.detail, exc.unmet)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("path", "query", "body"))
        return problem(request, 422, f"{where or 'request'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return problem(request, exc.status_code, str(exc.detail))

    @app.exception_handler(SQLAlchemyError)
    def _database(request: Request, exc: SQLAlchemyError) -> Response:
        orig = getattr(exc, "orig", None)
        reason = (str(orig if orig is not None else exc).strip().splitlines() or ["unknown error"])[0]
        return problem(request, 503, f"the databases cannot be read: {reason} (run `migrator init`?)")

    @app.exception_handler(MappingError)
    def _mapping(request: Request, exc: MappingError) -> Response:
        return problem(request, 503, f"the mapping cannot be used: {exc}")

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # -- the migration ------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def migration(request: Request) -> Response:
        return page(request, "migration.html", m=overview.collect(source), poll_ms=POLL_MS)

    @app.get("/fragments/migration", response_class=HTMLResponse)
    def migration_live(request: Request) -> Response:
        return page(request, "_live.html", m=overview.collect(source))

    @app.get("/api/migration")
    def migration_json() -> dict[str, Any]:
        return overview.collect(source)

    # -- a user ---------------------------------------------------------------------------
    def mapped(table: str | None, key: str) -> tuple[Any, Any]:
        try:
            mapping = source.mapping(table)
            return mapping, users.parse_key(mapping, key)
        except LookupError as exc:
            raise Problem(404, str(exc.args[0])) from None
        except users.BadKey as exc:
            raise Problem(422, str(exc)) from None

    @app.get("/users", response_class=HTMLResponse)
    def find_user(request: Request, key: str | None = None, table: str | None = None) -> Response:
        if key is None or not key.strip():
            return page(request, "find.html", table=table)
        mapping, parsed = mapped(table, key)
        return RedirectResponse(request.url_for("user", key=str(parsed)).include_query_params(table=mapping.table),
                                status_code=303)

    @app.get("/users/{key}", response_class=HTMLResponse, name="user")
    def user(request: Request, key: str, table: str | None = None) -> Response:
        mapping, parsed = mapped(table, key)
        try:
            data = users.side_by_side(source, mapping, parsed)
        except users.NoSuchKey as exc:
            raise Problem(404, str(exc)) from None
        return page(request, "user.html", u=data)

    @app.get("/users/{key}/timeline", response_class=HTMLResponse, name="timeline")
    def user_timeline(request: Request, key: str, table: str | None = None, version: int | None = None) -> Response:
        mapping, parsed = mapped(table, key)
        try:
            data = users.timeline(source, mapping, parsed)
        except users.NoSuchKey as exc:
            raise Problem(404, str(exc)) from None
        last = len(data["events"])
        if version is not None and not 0 <= version <= last:
            raise Problem(422, f"version must be between 0 and {last} (the stream's last), not {version}")
        return page(request, "timeline.html", t=data, version=last if version is None else version)

    # -- the verify reports -----------------------------------------------------------------
    @app.get("/reports", response_class=HTMLResponse)
    def reports(request: Request) -> Response:
        from migrator.verify.runs import latest

        return page(request, "reports.html", runs=latest(source.es.engine, limit=100))

    @app.get("/reports/{run_id}", response_class=HTMLResponse)
    def report(run_id: int) -> Response:
        from migrator.report.html_page import render
        from migrator.verify.runs import RunNotFound, load

        try:
            doc = load(source.es.engine, run_id)
        except RunNotFound as exc:
            raise Problem(404, str(exc)) from None
        return HTMLResponse(render(doc))

    # -- the phase actions ------------------------------------------------------------------
    @app.post("/actions/{name}")
    async def act(request: Request, name: str) -> dict[str, Any]:
        run = actions.ACTIONS.get(name)
        if run is None:
            raise Problem(404, f"no action {name!r}: the actions are {', '.join(actions.ACTIONS)}")
        _authorize(source, request.headers.get("authorization", ""))
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise Problem(413, f"the request body is larger than {MAX_BODY} bytes")
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise Problem(422, "the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise Problem(422, "the body must be a JSON object")
        try:
            message = await run_in_threadpool(run, source, body, ACTOR)  # the guards may wait for the relay
        except actions.Refused as exc:
            raise Problem(exc.status, exc.detail,
                          [g.to_dict() for g in exc.unmet] if exc.unmet else None) from None
        return {"action": name, "actor": ACTOR, "message": message}

    return app


def _authorize(source: Source, header: str) -> None:
    token = source.token
    if token is None:
        raise Problem(403, "the phase actions are disabled: set DASHBOARD_TOKEN")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Problem(403, "the phase actions need the dashboard token (Authorization: Bearer <DASHBOARD_TOKEN>)")


def __getattr__(name: str) -> Any:
    """Returns `app` (the environment's dashboard), built on first access."""
    if name == "app":
        built = create_app()
        globals()["app"] = built
        return built
    raise AttributeError(name)
