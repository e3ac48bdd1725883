"""Tokens naming a running process, so a lock or claim left by a dead one can be taken over.

A token is `host:pid:nonce`. A holder on another host is trusted until its lease runs
out; one on this host whose process no longer exists is known to be gone at once.
"""

from __future__ import annotations

import os
import socket
import uuid

HOST_CHARS = 40  # fits the token in the outbox's claim column (80 characters)


def process_token() -> str:
    """A fresh token for this process: host, pid and a nonce."""
    return f"{socket.gethostname()[:HOST_CHARS]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def process_is_gone(token: str) -> bool:
    """True when `token` names a process on this host that no longer exists."""
    host, _, rest = token.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:HOST_CHARS] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False
