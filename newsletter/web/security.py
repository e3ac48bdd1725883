"""ASGI wrappers every request passes: security headers on every response, a body cap.

`SecurityHeaders` is the outermost layer of the app, so even a page for an unexpected
error carries the headers; `BodyLimit` reads at most `max_bytes` of a request body before
any route sees it, and answers 413 past that.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The pages use no JavaScript at all, load nothing from elsewhere, and are never framed.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'none'",
        "object-src 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The tokens in /confirm, /unsubscribe and /preferences URLs must not leak onward.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# A response may set these itself, and then keeps its own: the mail's HTML (the archive's
# web version, the staff's preview in a frame) needs inline styles and first-party
# images, and the preview must be framed by the review page of the same origin.
OVERRIDABLE_HEADERS = frozenset({"content-security-policy", "x-frame-options"})


def mail_document_policy(image_origins: Sequence[str], *, framed_by_self: bool) -> dict[str, str]:
    """Headers for serving a composed mail as a page: no scripts, no forms, no fetches;
    its inline styles, and images only from `image_origins`
    (newsletter.editions.archive.image_origins)."""
    image_sources = " ".join(image_origins) or "'none'"
    policy = "; ".join(
        [
            "default-src 'none'",
            "style-src 'unsafe-inline'",
            f"img-src {image_sources}",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'self'" if framed_by_self else "frame-ancestors 'none'",
        ]
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "SAMEORIGIN" if framed_by_self else "DENY",
    }


# No form or API request of ours comes near this; anything larger is refused unread.
MAX_BODY_BYTES = 20 * 1024
# Except the staff's CSV import (a file, then the file carried in the preview page).
IMPORT_PATHS = ("/admin/subscribers/import", "/admin/subscribers/import/confirm")
IMPORT_BODY_BYTES = 2 * 1024 * 1024

# Pages hold tokens (in the URL or the form) and personal details: never keep a copy.
# Responses that set their own Cache-Control (the static files) keep theirs.
DEFAULT_CACHE_CONTROL = "no-store"

MakeResponse = Callable[[Scope], Response]


class SecurityHeaders:
    """Adds the security headers to every response; turns a crash into a plain 500 page."""

    def __init__(self, app: ASGIApp, *, server_error: MakeResponse) -> None:
        self.app = app
        self.server_error = server_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name.lower() in OVERRIDABLE_HEADERS and name in headers:
                        continue
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["Cache-Control"] = DEFAULT_CACHE_CONTROL
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Answer with our own page (with the headers), then let the server log it.
            if not started:
                await self.server_error(scope)(scope, receive, send_with_headers)
            raise


class BodyLimit:
    """Refuses request bodies over `max_bytes` with 413, before any route reads them."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        too_large: MakeResponse,
        larger: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.too_large = too_large
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.larger.get(scope.get("path", ""), self.max_bytes)
        if self._declared_length(scope) > max_bytes:
            await self.too_large(scope)(scope, receive, send)
            return
        # Bodies are small, so read the whole body first (also when it is sent in chunks
        # without a Content-Length) and replay it to the app.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                await self.too_large(scope)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0  # the server rejects a malformed length before we see it
        return 0
