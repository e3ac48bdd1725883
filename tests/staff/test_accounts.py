"""Staff accounts: what every command pays for them at start."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_accounts_hashes_nothing() -> None:
    # Every command imports this module; only a login needs the dummy hash (issue 15).
    code = (
        "import newsletter.staff.accounts as accounts; "
        "print(accounts._dummy_hash.cache_info().currsize)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0"
