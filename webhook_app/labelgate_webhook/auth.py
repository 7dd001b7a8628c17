"""The read token (``LABELGATE_API_TOKEN``): one check for every path that returns data.

Scripts send ``Authorization: Bearer <token>``. A browser cannot, so a page request without it
gets a small form (``GET /login``); posting the token there sets an ``HttpOnly``,
``SameSite=Strict`` cookie holding an HMAC of the token (not the token itself) and sends the
browser back to the page. Query-string tokens are not accepted: URLs end up in proxy logs,
browser history and ``Referer`` headers. Every comparison is constant time
(``hmac.compare_digest``) and runs before any lookup.
"""

from __future__ import annotations

import hashlib
import hmac
from html import escape
from urllib.parse import quote

from flask import Flask, Response, current_app, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

#: ``WWW-Authenticate`` challenge of a 401 (RFC 6750).
REALM = 'Bearer realm="labelgate"'
COOKIE = "labelgate_session"


def _token() -> str:
    return str(current_app.config.get("API_TOKEN") or "")


def session_value(token: str) -> str:
    """The cookie value for ``token``: changing the token logs every browser out."""
    return hmac.new(token.encode(), b"labelgate-session-v1", hashlib.sha256).hexdigest()


def _error(status: int, message: str, **headers: str) -> Response:
    res = jsonify({"error": message})
    res.status_code = status
    res.headers.update(headers)
    return res


def check_token(*, page: bool = False) -> BaseResponse | None:
    """None when the request may read, else the refusal to answer.

    Args:
        page: the path is an HTML page: a browser without credentials is sent to the token
            form instead of a JSON 401.

    Without a configured token every path is open (``labelgate serve`` binds 127.0.0.1 unless
    told otherwise); the quality API has its own rule (off without a token).
    """
    token = _token()
    if not token:
        return None
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if given.strip() and scheme.lower() == "bearer":
        # Bytes, so a non-ASCII header is a wrong token rather than a TypeError.
        if hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        return _error(
            401, "invalid bearer token", **{"WWW-Authenticate": f'{REALM}, error="invalid_token"'}
        )
    cookie = request.cookies.get(COOKIE, "")
    if cookie and hmac.compare_digest(cookie.encode(), session_value(token).encode()):
        return None
    if page:
        return redirect(f"/login?next={quote(request.full_path.rstrip('?'), safe='/')}", 303)
    return _error(401, "missing bearer token", **{"WWW-Authenticate": REALM})


def _safe_next(value: str | None) -> str:
    """Only paths of this server, so the form cannot redirect to another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


_FORM = """<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>
<link rel='icon' href='data:,'><title>labelgate: token</title></head><body style='font-family:sans-serif;max-width:30em;margin:4em auto'>
<h1>labelgate</h1><p>This server needs its read token (<code>LABELGATE_API_TOKEN</code>).</p>
{error}<form method='post' action='/login'><input type='hidden' name='next' value='{next}'>
<label>Token <input type='password' name='token' autocomplete='current-password' autofocus></label>
<button type='submit'>Open</button></form></body></html>"""


def register(app: Flask) -> None:
    """Add ``GET/POST /login`` (the token form for browsers)."""

    @app.get("/login")
    def login_form() -> Response:
        page = _FORM.format(error="", next=escape(_safe_next(request.args.get("next"))))
        return Response(page, mimetype="text/html", headers={"Cache-Control": "no-store"})

    @app.post("/login")
    def login() -> BaseResponse:
        token = _token()
        target = _safe_next(request.form.get("next"))
        given = request.form.get("token", "")
        if not token:
            return redirect(target, 303)
        if not hmac.compare_digest(given.encode(), token.encode()):
            page = _FORM.format(error="<p role='alert'>Wrong token.</p>", next=escape(target))
            return Response(page, status=401, mimetype="text/html")
        res = redirect(target, 303)
        res.set_cookie(
            COOKIE,
            session_value(token),
            httponly=True,
            samesite="Strict",
            secure=request.is_secure,
            path="/",
        )
        return res
