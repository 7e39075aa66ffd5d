"""Administration: maintainer actions on submissions (audited) and the table of every
submission. The actor comes from `leaderboard.auth`."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pandas as pd
from sqlalchemy import select, update

from leaderboard import views
from leaderboard.db import AdminAction, Status, Submission, utcnow
from leaderboard.errors import AuthError, ServiceError
from leaderboard.reads import summary_row
from leaderboard.state import ServiceState

__all__ = ["AdminMixin", "ADMIN_ACTIONS"]

logger = logging.getLogger(__name__)

ADMIN_ACTIONS = (
    "hide", "unhide", "delete", "undelete", "rescore", "baseline", "unbaseline", "verify",
    "unverify",
)  # fmt: skip


class AdminMixin(ServiceState):
    """Maintainer actions (`admin_action`) and the full submissions table (`admin_table`)."""

    def admin_action(self, action: str, submission_ids: Iterable[int], actor: str) -> list[str]:
        """Apply a maintainer action (ADMIN_ACTIONS) to submissions; returns one line each.

        `actor` comes from `authorize`. rescore requeues with the current protocol.
        """
        if action not in ADMIN_ACTIONS:
            raise ServiceError(f"unknown action {action!r}; one of {', '.join(ADMIN_ACTIONS)}")
        flags = {
            "hide": {"hidden": True}, "unhide": {"hidden": False},
            "delete": {"deleted": True}, "undelete": {"deleted": False},
            "baseline": {"baseline": True}, "unbaseline": {"baseline": False},
            "verify": {"verified": True}, "unverify": {"verified": False},
        }  # fmt: skip
        lines = []
        with self.factory() as session:
            for sid in submission_ids:
                row = session.get(Submission, int(sid))
                if row is None:
                    lines.append(f"{sid}: no such submission")
                    continue
                if action == "rescore":
                    if row.deleted:
                        lines.append(f"{sid}: deleted; undelete it first")
                        continue
                    if row.status in (Status.RECEIVED, Status.VALIDATED):
                        lines.append(f"{sid}: still being validated")
                        continue
                    if not self.store.path_for(row.archive_sha256, row.archive_ext).is_file():
                        lines.append(
                            f"{sid}: its archive was deleted when it was refused at upload; the "
                            "submitter must submit it again"
                        )
                        continue
                    values: dict[str, Any] = {
                        "status": Status.QUEUED, "attempts": 0, "claimed_by": None,
                        "reason": "", "details": [], "progress_done": 0,
                        "protocol_id": self.protocol.identifier, "finished_at": None,
                    }  # fmt: skip
                else:
                    values = flags[action]
                session.execute(
                    update(Submission)
                    .where(Submission.id == row.id)
                    .values(updated_at=utcnow(), **values)
                )
                session.add(AdminAction(submission_id=row.id, action=action, actor=actor))
                lines.append(f"{sid}: {action} done")
            session.commit()
        self._changed()
        self._wake.set()
        logger.info("%s by %s on %s", action, actor, list(submission_ids))
        return lines

    def admin_table(self, actor: str) -> pd.DataFrame:
        """Every submission (hidden and deleted included), for maintainers."""
        if not actor:
            raise AuthError("maintainer access refused")
        with self.factory() as session:
            rows = session.scalars(select(Submission).order_by(Submission.id.desc())).all()
        return views.submissions_frame(
            [summary_row(r, admin=True, clean=self.public_message) for r in rows], admin=True
        )
