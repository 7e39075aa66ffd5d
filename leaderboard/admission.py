"""Who may submit what: submitter identities, keys, per-submitter limits, refusal rate limits,
reserved method names and duplicates. Used by the submit flow (`leaderboard.submissions`).

Identities. The displayed name is what the user typed; limits count by a normal form of it
(`leaderboard.identity`): `quota_key` where names are not authenticated (off a Space
without keys: `ALICE`, `аlice`, `alice+2` and `alice-02` share alice's quota), the
stricter `name_key` where they are (Hugging Face login on a Space, or SVR_REQUIRE_KEYS).

Refusals (anything `submit` refuses, validation failures included) are limited to
SVR_MAX_REFUSALS per SVR_REFUSAL_WINDOW per identity and per client address: in process
(`leaderboard.ratelimit`, both kinds, lost at a restart) and, for identities, also counted
from the failed rows of the database (which survive restarts; client addresses are not
stored). Over the limit, a submission is refused at once, before its archive is read.

Addresses. Accepted submissions are also limited to SVR_MAX_PER_ADDRESS per 24 hours per
client address (in process, lost at a restart; addresses are never stored): in open mode
names are free, and this bounds what one machine can submit under many of them.

Reserved names. Nobody but the seeding of baselines can submit a method whose
`method_core` equals that of a shipped method (`leaderboard.seed.BASELINE_NAMES`, both
the registry names and the display names) or of an entry a maintainer marked as baseline,
nor a method name claiming a status (`identity.claims`: verified, official, baseline, ...).

Duplicates. The same predictions are scored once, whoever submits them: a submission whose
archive bytes or decoded items (`ParsedSubmission.content_sha256`) equal those of an
earlier submission that did not fail (deleted ones included) is refused, naming it.
Baselines are compared with baselines only (a user's copy of a baseline's predictions is
refused, never the baseline).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from leaderboard import identity
from leaderboard.db import ACTIVE_STATES, Status, Submission, utcnow
from leaderboard.errors import ServiceError
from leaderboard.ratelimit import SlidingWindow
from leaderboard.state import ServiceState

__all__ = ["AdmissionMixin", "Submitter", "reserved_method_names"]

logger = logging.getLogger(__name__)

NAME_MAX = 100
_SUBMITTER_RE = re.compile(r"\A[\w .@+-]{1,100}\Z")


@dataclass(frozen=True)
class Submitter:
    """A submitter: the name as typed (trimmed) and its normal forms."""

    name: str
    key: str  # identity.name_key
    quota: str  # identity.quota_key

    @classmethod
    def parse(cls, name: str | None) -> Submitter:
        """Check a submitter name (ServiceError saying what to fix) and normalise it."""
        text = (name or "").strip()
        identity.check_text(text, "submitter name")
        if not _SUBMITTER_RE.match(text):
            raise ServiceError(
                "a submitter name is required (1-100 letters, digits, spaces or . @ + - _)"
            )
        text = identity.clean_name(text, "submitter name", NAME_MAX)
        return cls(text, identity.name_key(text), identity.quota_key(text))


def reserved_method_names(extra: tuple[str, ...] = ()) -> list[str]:
    """The method names nobody else may submit (or imitate): the shipped methods' registry
    and display names, the reference baselines, and `extra` (baseline entries)."""
    from leaderboard.ranking import REFERENCE_BASELINES
    from leaderboard.seed import BASELINE_NAMES

    names = [*BASELINE_NAMES, *BASELINE_NAMES.values(), *REFERENCE_BASELINES, *extra]
    return sorted(set(names))


def _minutes(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class AdmissionMixin(ServiceState):
    """The checks of `leaderboard.submissions.SubmissionsMixin.submit` (module docstring)."""

    # ------------------------------------------------------------------ refusals

    def _refusal_windows(self) -> tuple[SlidingWindow, SlidingWindow]:
        """(per identity, per client address) windows of refused submissions."""
        windows = self._cache.get("refusal_windows")
        if windows is None:
            limit, window = self.settings.max_refusals, self.settings.refusal_window_s
            windows = (
                SlidingWindow(limit, window, clock=self._clock),
                SlidingWindow(limit, window, clock=self._clock),
            )
            self._cache["refusal_windows"] = windows
        return windows

    def _limit_key(self, submitter: Submitter) -> str:
        return submitter.key if self.settings.authenticated else submitter.quota

    def _check_refusals(self, submitter: Submitter | None, client: str | None) -> None:
        """Refuse at once (not counted) when the identity or the client address has been
        refused `max_refusals` times within the window."""
        by_name, by_client = self._refusal_windows()
        limit, window = self.settings.max_refusals, self.settings.refusal_window_s
        waits: list[tuple[float, str]] = []
        if client:
            waits.append((by_client.retry_after(client), "this address"))
        if submitter is not None:
            waits.append((by_name.retry_after(self._limit_key(submitter)), "this submitter"))
            since = utcnow() - dt.timedelta(seconds=window)
            column = (
                Submission.submitter_key if self.settings.authenticated else Submission.quota_key
            )
            with self.factory() as session:
                failed = session.scalar(
                    select(func.count(Submission.id)).where(
                        column == self._limit_key(submitter),
                        Submission.status == Status.FAILED,
                        Submission.created_at >= since,
                    )
                )
            if failed >= limit:
                waits.append((window, "this submitter"))
        wait, who = max(waits, default=(0.0, ""))
        if wait > 0:
            raise ServiceError(
                f"too many refused submissions from {who} ({limit} within "
                f"{_minutes(window)}); try again in {_minutes(wait)}, after fixing what the "
                "earlier refusals said"
            )

    def _address_window(self) -> SlidingWindow:
        """Accepted submissions per client address over the last 24 hours."""
        window = self._cache.get("address_window")
        if window is None:
            window = SlidingWindow(self.settings.max_per_address, 86400.0, clock=self._clock)
            self._cache["address_window"] = window
        return window

    def _check_address(self, client: str | None) -> None:
        """Refuse at once when `client` has had `max_per_address` submissions accepted in
        24 hours, whatever names they came under."""
        wait = self._address_window().retry_after(client) if client else 0.0
        if wait > 0:
            raise ServiceError(
                f"this address has submitted {self.settings.max_per_address} times in 24 hours "
                f"(under any names); try again in {_minutes(wait)}"
            )

    def _accepted_from(self, client: str | None) -> None:
        if client:
            self._address_window().add(client)

    def _refused(self, submitter: Submitter | None, client: str | None) -> None:
        """Count one refusal of `submitter` and `client`."""
        by_name, by_client = self._refusal_windows()
        if client:
            by_client.add(client)
        if submitter is not None:
            by_name.add(self._limit_key(submitter))

    # ------------------------------------------------------------------ keys and limits

    def _check_key(self, submitter: Submitter, key: str | None) -> None:
        from leaderboard.keys import check_key

        if not check_key(self.factory, submitter.name, key):
            raise ServiceError(
                f"a valid submitter key for {submitter.name!r} is required on this server; "
                "ask a maintainer for one (they issue it with `python -m leaderboard keys add "
                "NAME`), and give it with the name"
            )

    def _check_limits(self, session: Any, submitter: Submitter) -> None:
        """Per-day and concurrent limits of the submitter's identity (see the module
        docstring). Deleted submissions still count (deleting must not reset the limit);
        failed ones do not (a rejected archive should be fixable at once)."""
        column = Submission.submitter_key if self.settings.authenticated else Submission.quota_key
        key = self._limit_key(submitter)
        since = utcnow() - dt.timedelta(days=1)
        today = session.scalar(
            select(func.count(Submission.id)).where(
                column == key, Submission.created_at >= since, Submission.status != Status.FAILED
            )
        )
        if today >= self.settings.max_per_day:
            raise ServiceError(
                f"{submitter.name!r} has reached the limit of {self.settings.max_per_day} "
                "submissions in 24 hours (failed ones do not count; names that differ only in "
                "case, look-alike letters or a number or +tag at the end count as one); try "
                "again later"
            )
        active = session.scalar(
            select(func.count(Submission.id)).where(
                column == key,
                Submission.status.in_(ACTIVE_STATES),
                Submission.deleted.is_(False),
            )
        )
        if active >= self.settings.max_concurrent:
            raise ServiceError(
                f"{submitter.name!r} already has {active} submission(s) waiting or being scored "
                f"(limit {self.settings.max_concurrent}); wait until they finish"
            )

    # ------------------------------------------------------------------ method names

    def _baseline_methods(self) -> tuple[str, ...]:
        with self.factory() as session:
            return tuple(
                session.scalars(
                    select(Submission.method).where(
                        Submission.baseline.is_(True), Submission.status != Status.FAILED
                    )
                ).all()
            )

    def _check_method_name(self, method: str, baseline: bool) -> None:
        """Refuse a method name that claims a status or imitates a reserved name."""
        if baseline or not method:
            return
        claimed = identity.claims(method)
        if claimed:
            raise ServiceError(
                f"the method name {method!r} claims {', '.join(repr(c) for c in claimed)}: only "
                "maintainers mark entries as verified or baseline (the table shows it in its "
                "own column); remove the word"
            )
        core = identity.method_core(method)
        for reserved in reserved_method_names(self._baseline_methods()):
            if core and core == identity.method_core(reserved):
                raise ServiceError(
                    f"the method name {method!r} is reserved for, or too close to, the reference "
                    f"entry {reserved!r}; give your method its own name"
                )

    # ------------------------------------------------------------------ duplicates

    def _earlier_duplicate(
        self, session: Any, baseline: bool, archive_sha: str, content_sha: str | None = None,
        method: str = "", exclude: int | None = None, replaces: int | None = None,
    ) -> Submission | None:  # fmt: skip
        """The earlier, not failed submission with the same archive or decoded items (for a
        baseline: the earlier baseline with the same archive, items or method name; the
        names of the baseline it `replaces` and of those already replaced do not count)."""
        same = Submission.archive_sha256 == archive_sha
        if content_sha:
            same = same | (Submission.content_sha256 == content_sha)
        if baseline and method:
            replaced = select(Submission.supersedes).where(
                Submission.supersedes.is_not(None), Submission.status != Status.FAILED
            )  # an entry a live baseline replaces does not hold its name
            named = (Submission.method == method) & Submission.id.not_in(replaced)
            if replaces is not None:
                named = named & (Submission.id != replaces)
            same = same | named
        where = [same, Submission.status != Status.FAILED]
        if baseline:  # one live baseline of a method per benchmark
            where += [
                Submission.baseline.is_(True), Submission.deleted.is_(False),
                Submission.benchmark_id == self.benchmark.meta.identifier,
            ]  # fmt: skip
        if exclude is not None:
            where.append(Submission.id != exclude)
        return session.scalars(select(Submission).where(*where).order_by(Submission.id)).first()

    def _duplicate_message(self, earlier: Submission, submitter: Submitter) -> str:
        """Why a duplicate is refused, naming the earlier submission as far as the submitter
        may know it (their own: its public id, method and state; someone else's: its entry
        number, and its method only if it is on the leaderboard)."""
        when = f"{earlier.created_at:%Y-%m-%d %H:%M} UTC"
        rule = "identical predictions are scored once, whoever submits them"
        if earlier.submitter_key == submitter.key:
            state = "deleted" if earlier.deleted else earlier.status
            return (
                f"these predictions were already submitted as submission {earlier.public_id} "
                f"({earlier.method!r}, {state}, {when}); {rule}: a maintainer can rescore that "
                "one"
            )
        visible = earlier.status == Status.DONE and not (earlier.hidden or earlier.deleted)
        if visible:
            return (
                f"these predictions were already submitted: they are on the leaderboard as "
                f"entry #{earlier.id} ({earlier.method!r}); {rule}"
            )
        return (
            f"these predictions were already submitted (submission #{earlier.id}, {when}); {rule}"
        )
