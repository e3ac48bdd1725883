"""The staff page with the sign-up form for the movement's own website: the HTML to paste."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from newsletter.core.config_values import url_origin
from newsletter.web.admin.context import Admin
from newsletter.web.public.embed import embed_snippet

router = APIRouter(prefix="/admin")


@router.get("/embed")
def embed_page(request: Request, admin: Admin) -> Response:
    settings = admin.web.settings
    origins = list(settings.web.embed_origins)
    website = url_origin(settings.site.website_url)
    return admin.page(
        "embed.html.j2",
        request,
        snippet=embed_snippet(admin.web),
        origins=origins,
        # What to write in the settings: the sites allowed now, else the movement's site.
        suggested_origins=origins or ([website] if website else []),
    )
