"""axe-core in a Playwright page: inject it, run it, and say what it found, by impact.

The page's context must be made with `bypass_csp=True`: our pages allow no script of
their own, so without it the injected axe would be refused. `make axe` installs the
pinned axe-core from the npm registry into the git-ignored .cache/axe; without it the
tests that need it skip (`AXE_MISSING`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.support.paths import ROOT

AXE_SCRIPT = ROOT / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
AXE_MISSING = (
    f"{AXE_SCRIPT.relative_to(ROOT)} is missing (install it with `make axe`, which needs npm)"
)
IMPACTS = ("critical", "serious", "moderate", "minor")
TARGETS_SHOWN = 3

# Only the violations, each cut down to what a failure message needs.
_RUN_SCRIPT = """
async () => {
  const results = await axe.run(document, { resultTypes: ['violations'] });
  return results.violations.map((rule) => ({
    rule: rule.id,
    impact: rule.impact || 'minor',
    help: rule.help,
    targets: rule.nodes.map((node) => node.target.flat(Infinity).join(' ')),
  }));
}
"""


@dataclass(frozen=True)
class Violation:
    """One axe rule broken on one page, with the elements that break it."""

    where: str
    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]

    def describe(self) -> str:
        shown = ", ".join(self.targets[:TARGETS_SHOWN])
        more = len(self.targets) - TARGETS_SHOWN
        if more > 0:
            shown += f" and {more} more"
        return f"{self.where}: {self.rule} ({self.impact}) at {shown}: {self.help}"


def run_axe(page: Any, *, where: str) -> list[Violation]:
    """Every axe violation on the document now in `page`; `where` names it in messages."""
    page.add_script_tag(path=str(AXE_SCRIPT))
    found = page.evaluate(_RUN_SCRIPT)
    return [
        Violation(where, item["rule"], item["impact"], item["help"], tuple(item["targets"]))
        for item in found
    ]


def by_impact(violations: Iterable[Violation]) -> dict[str, list[Violation]]:
    """The violations under each impact, most severe first (every impact present)."""
    grouped: dict[str, list[Violation]] = {impact: [] for impact in IMPACTS}
    for violation in violations:
        grouped.setdefault(violation.impact, []).append(violation)
    return grouped


def at_least(impact: str, violations: Iterable[Violation]) -> list[Violation]:
    """The violations of `impact` or worse."""
    worst = IMPACTS[: IMPACTS.index(impact) + 1]
    return [violation for violation in violations if violation.impact in worst]


def report(violations: Iterable[Violation]) -> str:
    """One line per violation, most severe first, for an assertion's message."""
    lines = [
        violation.describe()
        for impact, group in by_impact(violations).items()
        for violation in group
    ]
    return "\n".join([f"{len(lines)} axe violation(s):", *lines])
