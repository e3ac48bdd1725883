"""The sign-up form on another website: `POST /embed/subscribe`, and the snippet to paste.

The movement's own website carries a plain HTML form (templates/web/embed_snippet.html.j2,
shown to staff on /admin/embed) that posts here across sites. It cannot carry our CSRF
token: another site can neither read nor set our cookie. Here the double opt-in is the
proof instead, as for the JSON API: nothing happens to an address until its owner
confirms from their own mailbox. The guards are the sign-up page's own, called the same
way: the per-client limit, the honeypot, and the per-address mail limit in the flow.

Which sites may carry the form is `[web] embed_origins`. A browser says where a form was
posted from in `Origin` (else in `Referer`); a post from any other site is refused with a
page of its own (403) before anything is counted, read or stored. A post that names no
site at all is accepted: privacy tools strip both headers. A page that hides where it is
(a browser sends `Origin: null` for it) is not a site in the list, so it is refused.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.config import Settings
from newsletter.core.config_values import url_origin
from newsletter.core.templating import render_template
from newsletter.web.context import Web, WebContext
from newsletter.web.forms import HONEYPOT_FIELD, read_form
from newsletter.web.public.subscribe import sign_up
from subscribers.models import EMAIL_MAX_CHARS, NAME_MAX_CHARS

PATH = "/embed/subscribe"
REFUSED = "web/embed_refused.html.j2"
SNIPPET = "web/embed_snippet.html.j2"
# What browsers send for a page whose origin they do not disclose; never a setting.
UNDISCLOSED = "null"

router = APIRouter()


def posted_from(request: Request) -> str | None:
    """The origin of the page the form was on, as the browser says it: `Origin`, else
    the origin of `Referer`; None when it sent neither; UNDISCLOSED for a header that
    names no http(s) origin."""
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value is not None:
            return url_origin(value) or UNDISCLOSED
    return None


def allowed_origins(settings: Settings) -> frozenset[str]:
    """`[web] embed_origins`, and the site itself (a post from it is not cross-site)."""
    own = url_origin(settings.site.base_url)
    return frozenset([*settings.web.embed_origins, *([own] if own else [])])


def refused(web: WebContext, origin: str) -> Response:
    """The page for a form on a site that may not sign people up here; nothing happened."""
    site = None if origin == UNDISCLOSED else origin.split("://", 1)[1]
    return web.pages.page(REFUSED, status=403, from_site=site)


@router.post(PATH)
async def subscribe_from_elsewhere(request: Request, web: Web) -> Response:
    origin = posted_from(request)
    if origin is not None and origin not in allowed_origins(web.settings):
        return refused(web, origin)
    form = await read_form(request)
    if form is None:
        return web.pages.problem("bad_request", status=400)
    # Wrong input gets this site's own sign-up form, filled in, with its CSRF token: sent
    # again from here, it goes through the normal sign-up.
    return await sign_up(web, request, form, invalid_status=422)


def embed_snippet(web: WebContext) -> str:
    """The HTML form to paste into a page of another site, for these settings."""
    base_url = web.settings.site.base_url
    context = {
        "site": web.settings.site,
        "action": f"{base_url}{PATH}",
        "privacy_url": f"{base_url}/subscribe",
        "themes": [(slug, theme.name) for slug, theme in web.settings.themes.items()],
        "honeypot_field": HONEYPOT_FIELD,
        "consent_text": web.pages.consent_text,
        "email_max_chars": EMAIL_MAX_CHARS,
        "name_max_chars": NAME_MAX_CHARS,
    }
    return render_template(web.environment, SNIPPET, context).strip() + "\n"
