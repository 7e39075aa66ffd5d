"""Errors the leaderboard service raises to the user interface.

`ServiceError` (a ValueError) is a request the service refuses, with a one-sentence `reason`,
item-level `details` and, for a refused duplicate, `duplicate_of` (the internal id of the
earlier submission it repeats); `SubmissionRejected` is a submission recorded as failed;
`AuthError` (a PermissionError) is a maintainer action without valid credentials.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["ServiceError", "SubmissionRejected", "AuthError", "public_message"]

# Absolute paths under the usual system roots (whatever is left once the known folders are
# replaced): "/tmp/...", "/home/...", "C:\\Users\\..." and the like.
_SYSTEM_PATH = re.compile(
    r"(?<![\w:/.])(?:/(?:tmp|home|root|usr|var|opt|srv|mnt|media|work|private|Users|proc|etc"
    r"|run|data|app|workspace)(?:/[^\s'\"(),;:]*)?|[A-Za-z]:\\[^\s'\"(),;:]+)"
)


class ServiceError(ValueError):
    """A request the service refuses; `reason` is one sentence, `details` item-level lines,
    `duplicate_of` the id of the earlier submission a refused duplicate repeats (else None)."""

    def __init__(
        self, reason: str, details: list[str] | None = None, *, duplicate_of: int | None = None
    ):
        self.reason = reason
        self.details = list(details or [])
        self.duplicate_of = duplicate_of
        super().__init__(
            reason if not self.details else reason + "\n- " + "\n- ".join(details or [])
        )


class SubmissionRejected(ServiceError):
    """Validation failed; the submission is recorded as failed under `submission_id` (the
    internal id) and `public_id` (the one users see, and the message names)."""

    def __init__(
        self,
        submission_id: int,
        reason: str,
        details: list[str] | None = None,
        public_id: str | None = None,
        duplicate_of: int | None = None,
    ):
        self.submission_id = submission_id
        self.public_id = public_id
        shown = public_id or submission_id
        super().__init__(
            f"submission {shown} rejected: {reason}", details, duplicate_of=duplicate_of
        )


class AuthError(PermissionError):
    """A maintainer action without valid credentials."""


def public_message(text: str, folders: Iterable[tuple[str | os.PathLike | None, str]] = ()) -> str:
    """`text` fit to show a user: each of `folders` ((path, label) pairs, e.g. SVR_HOME)
    replaced by its label, then the temporary folder, the working folder and the Python
    installation, then any other absolute path under a system root by "<path>"."""
    known = [*folders, (tempfile.gettempdir(), "<tmp>"), (os.getcwd(), "<app>"),
             (sys.prefix, "<python>")]  # fmt: skip
    pairs: list[tuple[str, str]] = []
    for folder, label in known:
        if folder:
            pairs.append((str(folder), label))
            try:
                pairs.append((str(Path(folder).resolve()), label))
            except OSError:
                pass
    for folder, label in sorted(set(pairs), key=lambda p: -len(p[0])):  # longest first
        if len(folder) > 1:  # not inside a URL or a longer path: "https://x/tmp" stays
            text = re.sub(r"(?<![\w:/.])" + re.escape(folder.rstrip("/\\")), label, text)
    return _SYSTEM_PATH.sub("<path>", text)
