"""The staff's pages under /admin: login, dashboard, draft review, subscribers, the web form.

Every route but the login page and a new colleague's one-time link (welcome.py) sits on
the `protected` router, whose dependency demands a live staff session, so a new page is
protected by being added there. Without a session a GET is sent to the login page (and
back afterwards); anything else gets 401.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from newsletter.web.admin import (
    accounts,
    adding,
    announcements,
    dashboard,
    editions,
    embed,
    imports,
    items,
    login,
    people,
    person,
    plans,
    results,
    welcome,
)
from newsletter.web.admin.context import staff_member

protected = APIRouter(dependencies=[Depends(staff_member)])
protected.include_router(dashboard.router)
protected.include_router(editions.router)
protected.include_router(plans.router)
protected.include_router(results.router)
protected.include_router(items.router)
protected.include_router(announcements.router)
# Before people: its /subscribers/{public_id} would take "new", "import" or "returned" for an id.
protected.include_router(adding.router)
protected.include_router(imports.router)
protected.include_router(person.router)
protected.include_router(people.router)
protected.include_router(embed.router)
protected.include_router(accounts.router)

router = APIRouter()
router.include_router(login.router)
router.include_router(welcome.router)
router.include_router(protected)
