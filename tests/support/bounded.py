"""Running `newsletter` in a child process held to a memory cap and a time cap.

For hostile input: a test that lets the product near a gigabyte bomb must not take the
machine (or the test run) with it when the product gets it wrong. The caps are a safety
net, far above what the product needs, never a measurement.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.paths import ROOT

# Address space for the whole child: Python, its libraries, threads' stacks and arenas.
MEMORY_CAP_BYTES = 1 << 30
TIME_CAP_SECONDS = 120.0
SECRET_KEY = "bounded-test-secret-key-0123456789abcdef"

_CHILD = """
import resource, runpy, sys
cap = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
sys.argv = ["newsletter", *sys.argv[2:]]
runpy.run_module("newsletter", run_name="__main__")
"""


def run_newsletter_bounded(
    *args: str,
    memory_bytes: int = MEMORY_CAP_BYTES,
    time_cap: float = TIME_CAP_SECONDS,
) -> subprocess.CompletedProcess[str]:
    """`newsletter *args` in a child with RLIMIT_AS at `memory_bytes`, killed (and the
    test failed by TimeoutExpired) after `time_cap` seconds."""
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": SECRET_KEY, "NEWSLETTER_CONFIG": ""}
    return subprocess.run(
        [sys.executable, "-c", _CHILD, str(memory_bytes), *args],
        capture_output=True,
        text=True,
        timeout=time_cap,
        cwd=ROOT,
        env=env,
        check=False,
    )
