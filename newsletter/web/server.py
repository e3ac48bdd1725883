"""`newsletter serve`: the web app under uvicorn, with the real SMTP mailer."""

from __future__ import annotations

import uvicorn

from newsletter.core.clock import Clock, utc_now
from newsletter.core.config import Settings
from newsletter.core.db import Database
from newsletter.mail.mailer import SmtpMailer
from newsletter.web.app import create_app
from newsletter.web.connections import BACKLOG, ConnectionGuard, ConnectionLimits


def build_server(
    settings: Settings,
    database: Database,
    *,
    host: str | None = None,
    port: int | None = None,
    clock: Clock = utc_now,
    limits: ConnectionLimits | None = None,
) -> uvicorn.Server:
    """A uvicorn server for the app, mailing through [smtp]; `serve` runs one. Sign-ups
    queue their confirmation, which a task of the server sends (mail/queue_sender.py).

    `limits`: how long a client may take to send a request and how many connections may
    be open (connections.py); by default, the descriptor limit of the process permitting.
    """
    app = create_app(
        settings,
        database,
        clock=clock,
        send=SmtpMailer(settings, clock=clock).send_now,
        queue_mails=True,
    )
    guard = ConnectionGuard(limits or ConnectionLimits())
    config = uvicorn.Config(
        app,
        host=host or settings.web.host,
        port=port or settings.web.port,
        # h11 with deadlines for the request and a cap on connections: uvicorn itself
        # waits for ever for a request that never completes.
        http=guard.protocol,
        backlog=BACKLOG,
        # The app decides who the client is (clients.py, [web] trusted_proxies); uvicorn
        # must not rewrite the peer address from X-Forwarded-For by rules of its own.
        proxy_headers=False,
        server_header=False,
        # Access logs would keep every visitor's IP address next to the tokens in the
        # URLs they opened: exactly the file on people we promise not to keep.
        access_log=False,
        log_level="info",
    )
    return guard.server(config)


def serve(
    settings: Settings,
    database: Database,
    *,
    host: str | None = None,
    port: int | None = None,
    clock: Clock = utc_now,
) -> None:
    """Serve the pages and the API until interrupted (Ctrl-C or SIGTERM).

    One process: the sign-up limit is counted in memory per process (ratelimit.py).
    Put it behind a reverse proxy for TLS, and list that proxy in [web] trusted_proxies.
    """
    build_server(settings, database, host=host, port=port, clock=clock).run()
