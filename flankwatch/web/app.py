"""The desk's FastAPI application: pages (Jinja2, autoescaped), their JSON twins under /api/, static files
from the repository, and the security of `flankwatch.web.security` on every response.

Page modules each hold an `APIRouter` named `router` and are listed in `PAGE_MODULES`; they reach the
settings through `request.app.state.settings`, the archive through `archive_of(request)`, and render with
`render(request, template, **context)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from archive.base import ArchiveBackend
from core.settings import Settings
from flankwatch.web import security

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.autoescape = True  # every template, whatever its name: feed text is hostile
# The page modules, in the order of the navigation; each adds its routes (page and /api/ twin).
PAGE_MODULES = ("flankwatch.web.search_pages", "flankwatch.web.story_pages", "flankwatch.web.desk_pages")
NAVIGATION = (("/", "Search"), ("/stories", "Stories"), ("/watches", "Saved searches"), ("/feeds", "Feeds"))
OPEN_PATHS = ("/login", "/static/", "/healthz")


@contextmanager
def archive_of(request: Request) -> Iterator[ArchiveBackend]:
    """The archive, opened for one request (cheap on SQLite; the ES client pools its connections)."""
    from archive.backends import open_archive

    with open_archive(request.app.state.settings) as archive:
        yield archive


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    settings = settings_of(request)
    context.update(
        request=request,
        csrf_token=security.csrf_token(request, settings),
        csrf_field=security.CSRF_FIELD,
        navigation=NAVIGATION,
        login_required=settings.web_token is not None,
    )
    return templates.TemplateResponse(request, template, context, status_code=status_code)


async def verify_csrf(request: Request) -> None:
    """Dependency of every form handler that changes something: the form's token must match the cookie."""
    form = await request.form()
    submitted = form.get(security.CSRF_FIELD)
    if not security.csrf_ok(request, settings_of(request), submitted if isinstance(submitted, str) else None):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token: reload the page and try again")


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="Flankwatch desk",
        description="Search the archive and follow stories. Every page has its JSON twin under /api/.",
        docs_url=None,  # FastAPI's Swagger page loads its script from a CDN: /api/docs is ours (below)
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):  # type: ignore[no-untyped-def]
        path = request.url.path
        if not path.startswith(OPEN_PATHS) and not security.is_authenticated(request, settings):
            if path.startswith("/api/"):
                response: Response = JSONResponse({"detail": "log in first"}, status_code=401)
            else:
                response = RedirectResponse(f"/login?next={quote(str(request.url.path))}", status_code=303)
        else:
            response = await call_next(request)
        for name, value in security.SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if getattr(request.state, "csrf_new", False):
            response.set_cookie(
                security.CSRF_COOKIE, security.signer(settings, "csrf").dumps(request.state.csrf),
                httponly=True, samesite="strict", secure=request.url.scheme == "https",
            )  # fmt: skip
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002 - the form's field
        return render(request, "login.html", next=_local_path(next), error=None)

    @app.post("/login", include_in_schema=False, dependencies=[Depends(verify_csrf)])
    def login(request: Request, token: str = Form(""), next: str = Form("/")) -> Response:  # noqa: A002
        if not security.token_matches(settings, token):
            return render(request, "login.html", status_code=401, next=_local_path(next), error="Wrong token.")
        response = RedirectResponse(_local_path(next), status_code=303)
        response.set_cookie(
            security.SESSION_COOKIE, security.session_value(settings), httponly=True, samesite="strict",
            secure=request.url.scheme == "https", max_age=7 * 24 * 3600,
        )  # fmt: skip
        return response

    @app.post("/logout", include_in_schema=False, dependencies=[Depends(verify_csrf)])
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(security.SESSION_COOKIE)
        return response

    @app.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
    def api_docs(request: Request) -> HTMLResponse:
        """The OpenAPI description as a page: every operation with its parameters (no script needed)."""
        return render(request, "api_docs.html", operations=_operations(app.openapi()))

    for name in PAGE_MODULES:
        app.include_router(importlib.import_module(name).router)
    return app


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    operations = []
    for path, methods in sorted(schema.get("paths", {}).items()):
        for method, operation in methods.items():
            parameters = [
                {
                    "name": parameter.get("name", ""),
                    "where": parameter.get("in", ""),
                    "required": bool(parameter.get("required")),
                    "type": _type_of(parameter.get("schema") or {}),
                    "description": parameter.get("description") or "",
                }
                for parameter in operation.get("parameters", [])
            ]
            operations.append({
                "method": method.upper(), "path": path, "summary": operation.get("summary") or "",
                "description": operation.get("description") or "", "parameters": parameters,
            })  # fmt: skip
    return operations


def _type_of(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " or ".join(_type_of(option) for option in schema["anyOf"] if option.get("type") != "null")
    if schema.get("type") == "array":
        return f"list of {_type_of(schema.get('items') or {})}"
    return str(schema.get("type") or "any")


def _local_path(target: str) -> str:
    """Only a path on this site: `next=https://evil.example` or `//evil.example` goes home instead."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"
