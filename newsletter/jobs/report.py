"""What a run of the job did: its counts, how it ended, and the one line that sums it up."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from newsletter.core.numbers import dutch_number
from newsletter.jobs.runs import Run


@dataclass
class RunCounts:
    """What a run did, in numbers; stored as the run's `counts`."""

    retried: dict[str, int] = field(default_factory=dict)  # edition -> sent on retry
    planned: dict[str, int] = field(default_factory=dict)  # planned edition -> sent
    feeds: int = 0
    feeds_failed: int = 0
    new_articles: int = 0
    edition: int | None = None  # the draft this run made
    current_draft: int | None = None  # nothing new since this open draft
    sent: int | None = None  # auto_send: the new edition's counts
    failed_permanently: int = 0
    waiting: int = 0
    staff: int | None = None  # test copy and review link went to this many staff
    purged_subscribers: int = 0
    purged_tokens: int = 0
    returned: int | None = None  # mails read from the return mailbox ([bounces] set)
    returned_suppressed: int = 0  # addresses they bounced, marked complained or unsubscribed
    returned_unknown: int = 0  # not understood: kept for a person to look at
    probes_sent: int = 0  # probes of subscribers a bounce named by address only
    failed_steps: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunCounts:
        known = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in known})


def summary_line(run_id: int, outcome: str, counts: RunCounts, error: str | None) -> str:
    """One line on what a run did, e.g. "run 12: fetched 1 feed (3 new), drafted edition 4"."""
    if outcome == "skipped":
        return f"run {run_id}: skipped, {error or 'another run was in progress'}"
    if outcome == "running":
        return f"run {run_id}: running"
    parts = [
        f"retried edition {number} ({dutch_number(sent)} sent)"
        for number, sent in counts.retried.items()
    ]
    parts += [
        f"sent planned edition {number} ({dutch_number(sent)} sent)"
        for number, sent in counts.planned.items()
    ]
    if counts.feeds:
        failed = f", {counts.feeds_failed} failed" if counts.feeds_failed else ""
        plural = "" if counts.feeds == 1 else "s"
        parts.append(f"fetched {counts.feeds} feed{plural} ({counts.new_articles} new{failed})")
    if counts.edition is not None:
        parts.append(f"drafted edition {counts.edition}")
    elif counts.current_draft is not None:
        parts.append(f"nothing new since draft {counts.current_draft}")
    elif "draft" not in counts.failed_steps:
        parts.append("nothing new")
    if counts.sent is not None:
        sent = f"sent {dutch_number(counts.sent)}"
        if counts.failed_permanently:
            sent += f", {dutch_number(counts.failed_permanently)} failed permanently"
        if counts.waiting:
            sent += f", {dutch_number(counts.waiting)} waiting for retry"
        parts.append(sent)
    if counts.staff == 0:
        parts.append("no staff to tell (set [schedule] staff)")
    elif counts.staff is not None:
        parts.append(f"test copy and review link to {counts.staff} staff")
    if counts.returned:
        plural = "" if counts.returned == 1 else "s"
        parts.append(
            f"read {dutch_number(counts.returned)} returned mail{plural} "
            f"({counts.returned_suppressed} suppressed, "
            f"{counts.returned_unknown} not understood)"
        )
    if counts.probes_sent:
        parts.append(f"sent {counts.probes_sent} probe{'' if counts.probes_sent == 1 else 's'}")
    if counts.purged_subscribers or counts.purged_tokens:
        parts.append(
            f"purged {counts.purged_subscribers} unconfirmed, {counts.purged_tokens} expired tokens"
        )
    if outcome == "failed":
        parts.append(f"failed: {error}")
    return f"run {run_id}: " + ", ".join(parts)


@dataclass(frozen=True)
class RunReport:
    """How a run ended; `summary` is the line the CLI prints and the scheduler logs."""

    run_id: int
    trigger: str
    outcome: str  # ok, nothing_new, failed, skipped
    counts: RunCounts
    errors: tuple[tuple[str, str], ...]  # (step, message) of each step that failed
    started_at: datetime
    finished_at: datetime
    skipped_because: str | None = None

    @property
    def error(self) -> str | None:
        """What the run's record keeps as its error: every failure, or why it was skipped."""
        if self.skipped_because is not None:
            return self.skipped_because
        return "; ".join(f"{step}: {message}" for step, message in self.errors) or None

    @property
    def summary(self) -> str:
        return summary_line(self.run_id, self.outcome, self.counts, self.error)

    @property
    def exit_code(self) -> int:
        return 1 if self.outcome == "failed" else 0


def describe_run(run: Run) -> str:
    """The summary line of a stored run, as `newsletter runs` shows it."""
    if run.counts:
        return summary_line(run.id, run.outcome, RunCounts.from_json(run.counts), run.error)
    # Skipped, interrupted or still running: nothing was counted.
    return f"run {run.id}: {run.error or run.outcome}"
