"""The desk is safe by default: loopback only unless a token or an authenticating proxy is configured, a
login that sets an HttpOnly SameSite cookie, CSRF tokens on forms, a strict CSP on every response."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from flankwatch.web.app import create_app
from flankwatch.web.security import CSP, UnsafeBind, check_bind

TOKEN = "s3cret-desk-token"


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF field in the form"
    return match.group(1)


def test_loopback_needs_nothing_other_addresses_need_a_token_or_a_proxy(settings):
    for host in ("127.0.0.1", "::1", "localhost"):
        check_bind(host, settings)
    for host in ("0.0.0.0", "192.168.1.20", "::"):
        with pytest.raises(UnsafeBind, match="FLANKWATCH_WEB_TOKEN"):
            check_bind(host, settings)
    check_bind("0.0.0.0", settings.model_copy(update={"web_token": SecretStr(TOKEN)}))
    check_bind("0.0.0.0", settings.model_copy(update={"web_trusted_proxy_header": "X-Forwarded-User"}))


def test_serve_refuses_an_open_address_without_a_token(monkeypatch, tmp_path):
    from flankwatch.cli import app

    monkeypatch.setenv("FLANKWATCH_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("FLANKWATCH_WEB_TOKEN", raising=False)
    from core.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "1"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output


def test_local_desk_is_open_and_every_response_has_the_strict_policy(settings):
    client = TestClient(create_app(settings))
    for path in ("/", "/stories", "/watches", "/feeds", "/api/search", "/login"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CSP, path
        assert "'unsafe-inline'" not in CSP and "default-src 'self'" in CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_with_a_token_pages_need_the_login(settings):
    client = TestClient(create_app(settings.model_copy(update={"web_token": SecretStr(TOKEN)})))
    page = client.get("/stories", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/stories"
    assert client.get("/api/search").status_code == 401

    form = client.get("/login?next=/stories")
    assert form.status_code == 200 and 'type="password"' in form.text
    csrf = _csrf(form.text)
    wrong = client.post("/login", data={"token": "guess", "next": "/stories", "csrf_token": csrf})
    assert wrong.status_code == 401 and "Wrong token" in wrong.text
    assert client.post("/login", data={"token": TOKEN, "next": "/stories"}).status_code == 403  # no CSRF token

    done = client.post("/login", data={"token": TOKEN, "next": "/stories", "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/stories"
    cookie = done.headers["set-cookie"]
    assert "fw_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert TOKEN not in cookie  # the cookie is signed, it does not carry the token
    assert client.get("/stories").status_code == 200
    assert client.get("/api/search").status_code == 200

    client.cookies.clear()
    client.cookies.set("fw_session", "forged")
    assert client.get("/api/search").status_code == 401


def test_login_goes_back_only_to_a_page_of_this_site(settings):
    client = TestClient(create_app(settings.model_copy(update={"web_token": SecretStr(TOKEN)})))
    csrf = _csrf(client.get("/login").text)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        done = client.post("/login", data={"token": TOKEN, "next": target, "csrf_token": csrf}, follow_redirects=False)
        assert done.headers["location"] == "/", target


def test_a_trusted_proxy_header_lets_requests_in(settings):
    client = TestClient(create_app(settings.model_copy(update={"web_trusted_proxy_header": "X-Forwarded-User"})))
    assert client.get("/api/search").status_code == 401
    assert client.get("/api/search", headers={"X-Forwarded-User": "analyst@desk"}).status_code == 200


def test_forms_that_change_something_need_the_csrf_token(settings):
    client = TestClient(create_app(settings))
    assert client.post("/watches", data={"q": "brigade", "route": "default"}).status_code == 403
    assert client.post("/logout").status_code == 403
    other = TestClient(create_app(settings))  # another browser's token is not this browser's
    stolen = _csrf(other.get("/watches").text)
    client.get("/watches")
    assert client.post("/watches", data={"q": "brigade", "route": "default", "csrf_token": stolen}).status_code == 403


def test_the_api_page_lists_every_json_twin_without_any_script(settings):
    client = TestClient(create_app(settings))
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    assert "<script" not in page.text and "cdn" not in page.text.lower()
    for operation in ("GET /api/search", "GET /api/stories/{story_id}", "GET /api/watches", "GET /api/feeds"):
        assert operation in page.text, operation
    schema = client.get("/api/openapi.json").json()
    assert "/api/search" in schema["paths"]
