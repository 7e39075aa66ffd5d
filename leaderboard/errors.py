"""Errors the leaderboard service raises to the user interface.

`ServiceError` (a ValueError) is a request the service refuses, with a one-sentence `reason`
and item-level `details`; `SubmissionRejected` is a submission recorded as failed;
`AuthError` (a PermissionError) is a maintainer action without valid credentials.
"""

from __future__ import annotations

__all__ = ["ServiceError", "SubmissionRejected", "AuthError"]


class ServiceError(ValueError):
    """A request the service refuses; `reason` is one sentence, `details` item-level lines."""

    def __init__(self, reason: str, details: list[str] | None = None):
        self.reason = reason
        self.details = list(details or [])
        super().__init__(
            reason if not self.details else reason + "\n- " + "\n- ".join(details or [])
        )


class SubmissionRejected(ServiceError):
    """Validation failed; the submission is recorded as failed under `submission_id`."""

    def __init__(self, submission_id: int, reason: str, details: list[str] | None = None):
        self.submission_id = submission_id
        super().__init__(f"submission {submission_id} rejected: {reason}", details)


class AuthError(PermissionError):
    """A maintainer action without valid credentials."""
