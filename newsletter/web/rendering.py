"""HTML pages from the templates in templates/web/, and the site's own static files.

Every page shares the layout (web/base.html.j2) and a few values (the site's name and
contact details, the stylesheet's URL). A page with a form gets the CSRF token in its
context, and the cookie when the browser has none yet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.core.config import Settings
from newsletter.core.templating import render_template
from newsletter.editions.compose import tel_uri
from newsletter.jobs.cadence import describe_schedule
from newsletter.web.csrf import FIELD_NAME, CsrfGuard
from newsletter.web.forms import HONEYPOT_FIELD
from subscribers.models import EMAIL_MAX_CHARS, NAME_MAX_CHARS

CONSENT_TEMPLATE = "web/consent.txt.j2"


def is_staff_path(path: str) -> bool:
    """Whether `path` is one of the staff pages (their refusals lead back to /admin)."""
    return path == "/admin" or path.startswith("/admin/")


PROBLEM_TEMPLATE = "web/problem.html.j2"


@dataclass(frozen=True)
class StaticFile:
    """A file the app serves itself under /static/, with a content hash for its URL."""

    name: str
    content: bytes
    media_type: str

    @property
    def version(self) -> str:
        return hashlib.sha256(self.content).hexdigest()[:12]

    @property
    def url(self) -> str:
        # The version in the URL lets browsers keep the file until it changes.
        return f"/static/{self.name}?v={self.version}"


# name in templates/web/ -> media type; nothing else is served from /static/.
STATIC_FILES = {
    "site.css": "text/css; charset=utf-8",
    "admin.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def load_static_files(environment: jinja2.Environment) -> dict[str, StaticFile]:
    """Read the static files through the template loader, so staff overrides apply."""
    assert environment.loader is not None
    files = {}
    for name, media_type in STATIC_FILES.items():
        source, _, _ = environment.loader.get_source(environment, f"web/{name}")
        files[name] = StaticFile(name, source.encode("utf-8"), media_type)
    return files


class PageRenderer:
    """Renders the site's pages; hands out CSRF tokens to pages that hold a form."""

    def __init__(
        self, settings: Settings, environment: jinja2.Environment, csrf: CsrfGuard
    ) -> None:
        self._environment = environment
        self._csrf = csrf
        self.static_files = load_static_files(environment)
        self._shared: dict[str, Any] = {
            "site": settings.site,
            "contact_phone_uri": tel_uri(settings.site.contact_phone),
            "themes": [(slug, theme.name) for slug, theme in settings.themes.items()],
            "theme_descriptions": {
                slug: theme.description for slug, theme in settings.themes.items()
            },
            "cadence": describe_schedule(settings.schedule.cron),
            "stylesheet_url": self.static_files["site.css"].url,
            "admin_stylesheet_url": self.static_files["admin.css"].url,
            "icon_url": self.static_files["favicon.svg"].url,
            "csrf_field": FIELD_NAME,
            "honeypot_field": HONEYPOT_FIELD,
            "confirm_hours": settings.subscribers.confirm_hours,
            "ip_policy": settings.subscribers.ip_policy,
            "email_max_chars": EMAIL_MAX_CHARS,
            "name_max_chars": NAME_MAX_CHARS,
        }
        self.consent_text = " ".join(
            render_template(environment, CONSENT_TEMPLATE, self._shared).split()
        )
        self._shared["consent_text"] = self.consent_text

    def page(
        self,
        name: str,
        *,
        request: Request | None = None,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """Render template `name`; pass `request` when the page holds a form (CSRF)."""
        values = {**self._shared, "csrf_token": None, **context}
        new_cookie = None
        if request is not None:
            token, is_new = self._csrf.token_for(request)
            values["csrf_token"] = token
            new_cookie = token if is_new else None
        body = render_template(self._environment, name, values)
        response = HTMLResponse(body, status_code=status, headers=dict(headers or {}))
        if new_cookie is not None:
            self._csrf.set_cookie(response, new_cookie)
        return response

    def problem(
        self,
        kind: str,
        *,
        status: int,
        headers: Mapping[str, str] | None = None,
        staff: bool = False,
    ) -> HTMLResponse:
        """The page for a refused request: `kind` picks its Dutch text in messages.j2.

        `staff`: the request was for /admin, so the page leads back there, not to the
        public sign-up form.
        """
        return self.page(PROBLEM_TEMPLATE, status=status, headers=headers, kind=kind, staff=staff)

    def static(self, name: str) -> Response | None:
        file = self.static_files.get(name)
        if file is None:
            return None
        return Response(
            file.content,
            media_type=file.media_type,
            headers={"Cache-Control": "public, max-age=31536000, immutable"},
        )
