"""The public pages: sign up, confirm, unsubscribe and preferences, all in Dutch.

A GET never changes anything: pages reached from a link in a mail show a button, and only
its POST acts, so the link scanners of mail systems cannot confirm or unsubscribe anyone.
Every form carries a CSRF token, except the unsubscribe button, whose POST must also work
for a mail program's one-click request (RFC 8058) without cookies: there the secret
token in the URL is the whole proof, and anyone holding it could unsubscribe anyway.
"""

from __future__ import annotations

from fastapi import APIRouter

from newsletter.web.public import confirm, preferences, subscribe, unsubscribe

router = APIRouter()
router.include_router(subscribe.router)
router.include_router(confirm.router)
router.include_router(unsubscribe.router)
router.include_router(preferences.router)
