"""How the approvals page answers: its templates, security headers, redirects with a flash
message, and full pages (keyturn.api.ui, keyturn.api.ui_login).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from keyturn.api.ui_session import FLASH_COOKIE, Viewer, base, csrf_token, read_flash, set_flash

HERE = Path(__file__).parent
templates = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
))


def _when(value: datetime | str | None, precise: bool = False) -> str:
    """A UTC time as `2026-11-22 08:11:06` (with milliseconds if `precise`)."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S") + (f".{value.microsecond // 1000:03d}" if precise else "")


templates.env.filters["when"] = _when
ASSETS = {
    "ui.js": ("static/ui.js", "text/javascript; charset=utf-8"),
    "ui.css": ("static/ui.css", "text/css; charset=utf-8"),
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Origin "null"
    "Cache-Control": "no-store",
}



def secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(request: Request, to: str, flash: tuple[str, str] | None = None) -> Response:
    response = RedirectResponse(to, status_code=303)
    if flash:
        set_flash(request, response, *flash)
    return secure(response)


def page(request: Request, name: str, context: dict[str, Any], *,
         session: Viewer | None, status: int = 200,
         flash: dict[str, str] | None = None) -> Response:
    flash = flash or read_flash(request)
    full = {
        "ui": base(request),
        "principal": session.principal if session else None,
        "csrf": csrf_token(session.key) if session else "",
        "flash": flash,
        "refresh": None,
        **context,
    }
    response = templates.TemplateResponse(request, name, full, status_code=status)
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path=base(request))
    return secure(response)


def message_page(request: Request, session: Viewer | None, status: int,
                 heading: str, message: str) -> Response:
    """A page that says one thing: a refusal or an error, with its heading."""
    return page(request, "message.html", {"heading": heading, "message": message},
                session=session, status=status)


