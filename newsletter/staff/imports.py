"""Carrying an uploaded CSV file from the import preview to the import, signed, in the page.

Why this way: nothing personal is stored on the server between the two steps (no
temporary file to clean up after a crash or an abandoned preview), and staff need not
choose the file twice. The preview page (no-store, like every page) holds the file's
text, compressed, with the time it was read and an HMAC under the secret key; the import
accepts it only unchanged and within CARRY_MINUTES, and reads it afresh.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from datetime import datetime, timedelta

# The largest file staff may import: some 20,000 lines, far more than the list.
MAX_IMPORT_BYTES = 1024 * 1024
# How long a preview may wait before "Importeren".
CARRY_MINUTES = 30


def _mac(secret: str, issued: int, payload: str) -> str:
    message = f"csv-import:{issued}:{payload}".encode("ascii")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def seal_file(text: str, *, secret: str, now: datetime) -> str:
    """`text` as one signed, time-stamped field value for the preview page."""
    payload = base64.urlsafe_b64encode(zlib.compress(text.encode("utf-8"))).decode("ascii")
    issued = int(now.timestamp())
    return f"{issued}.{payload}.{_mac(secret, issued, payload)}"


def unseal_file(sealed: str, *, secret: str, now: datetime) -> str | None:
    """The text that `seal_file` sealed; None when it was changed, is too old or broken."""
    parts = sealed.strip().split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    issued_text, payload, mac = parts
    issued = int(issued_text)
    if not hmac.compare_digest(mac, _mac(secret, issued, payload)):
        return None
    age = now - datetime.fromtimestamp(issued, tz=now.tzinfo)
    if age > timedelta(minutes=CARRY_MINUTES) or age < -timedelta(minutes=1):
        return None
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.urlsafe_b64decode(payload), MAX_IMPORT_BYTES * 4)
        return raw.decode("utf-8") if not inflater.unconsumed_tail else None
    except (ValueError, zlib.error):
        return None
