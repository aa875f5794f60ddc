"""Safe by default: where the desk may listen, who may use it, and the headers and tokens every page gets.

- Bind: 127.0.0.1 (or ::1, localhost) needs nothing. Any other address needs `FLANKWATCH_WEB_TOKEN` (a login
  form that sets an HttpOnly, SameSite=Strict session cookie) or `FLANKWATCH_WEB_TRUSTED_PROXY_HEADER` (an
  authenticating proxy in front sets that header; requests without it are refused).
- CSRF: every form that changes something carries a token that must equal the signed `fw_csrf` cookie
  (double submit); a POST without it is refused with 403.
- Headers: a strict Content-Security-Policy (`default-src 'self'`, no inline script or style), no framing,
  no sniffing, no referrer.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from hashlib import sha256

from fastapi import Request
from itsdangerous import BadSignature, URLSafeSerializer

from core.settings import Settings

SESSION_COOKIE = "fw_session"
CSRF_COOKIE = "fw_csrf"
CSRF_FIELD = "csrf_token"
LOCAL_HOSTS = {"localhost"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class UnsafeBind(ValueError):
    """The desk was asked to listen beyond this machine without any way to tell who is asking."""


def is_local(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: Settings) -> None:
    """Refuse a non-loopback address unless a token or a trusted proxy header is configured."""
    if is_local(host) or settings.web_token is not None or settings.web_trusted_proxy_header:
        return
    raise UnsafeBind(
        f"refusing to listen on {host}: anyone who can reach it could read the archive and change saved "
        "searches. Set FLANKWATCH_WEB_TOKEN (a login form) or FLANKWATCH_WEB_TRUSTED_PROXY_HEADER (an "
        "authenticating proxy in front), or listen on 127.0.0.1."
    )


def _secret(settings: Settings) -> str:
    """The key that signs cookies: derived from the token when there is one (sessions survive restarts),
    else random per process (a local desk needs no lasting session)."""
    if settings.web_token is not None:
        return hmac.new(settings.web_token.get_secret_value().encode(), b"flankwatch-web-cookies", sha256).hexdigest()
    return _PROCESS_SECRET


_PROCESS_SECRET = secrets.token_hex(32)


def signer(settings: Settings, purpose: str) -> URLSafeSerializer:
    return URLSafeSerializer(_secret(settings), salt=f"flankwatch-{purpose}")


def token_matches(settings: Settings, given: str) -> bool:
    if settings.web_token is None:
        return False
    return hmac.compare_digest(given.encode(), settings.web_token.get_secret_value().encode())


def session_value(settings: Settings) -> str:
    return signer(settings, "session").dumps({"user": "analyst"})


def is_authenticated(request: Request, settings: Settings) -> bool:
    """Whether the request may use the desk: always when no token and no proxy header is configured (it
    then listens on loopback only), else by the proxy's header or a valid session cookie."""
    if settings.web_token is None and not settings.web_trusted_proxy_header:
        return True
    if settings.web_trusted_proxy_header and request.headers.get(settings.web_trusted_proxy_header):
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or settings.web_token is None:
        return False
    try:
        return signer(settings, "session").loads(cookie).get("user") == "analyst"
    except BadSignature:
        return False


def csrf_token(request: Request, settings: Settings) -> str:
    """The CSRF token of this browser (from its signed cookie, or a new one the response will set)."""
    existing = getattr(request.state, "csrf", None)
    if existing:
        return existing
    cookie = request.cookies.get(CSRF_COOKIE)
    token = None
    if cookie:
        try:
            token = signer(settings, "csrf").loads(cookie)
        except BadSignature:
            token = None
    request.state.csrf = token or secrets.token_urlsafe(24)
    request.state.csrf_new = token is None
    return request.state.csrf


def csrf_ok(request: Request, settings: Settings, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted:
        return False
    try:
        expected = signer(settings, "csrf").loads(cookie)
    except BadSignature:
        return False
    return isinstance(expected, str) and hmac.compare_digest(expected, submitted)
