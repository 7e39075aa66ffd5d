"""Authentication of maintainers: the maintainer token off a Space, Hugging Face OAuth
(allow-listed users and organisations) on one.

Wrong tokens are throttled per client address (`leaderboard.ratelimit.Backoff`): after
`FREE_FAILURES` wrong tokens, each further try must wait 1 s, 2 s, 4 s, ... (at most 15
minutes) after the last wrong one, and a try during that wait is refused without looking at
the token. A right token clears the address. So guessing a token costs at least
`2 ** n` seconds for n guesses instead of the 7.5 a second an unthrottled server answers.
"""

from __future__ import annotations

import hmac
import math
from typing import Any

from leaderboard.errors import AuthError
from leaderboard.ratelimit import Backoff
from leaderboard.state import ServiceState

__all__ = ["AuthMixin", "FREE_FAILURES"]

FREE_FAILURES = 3


class AuthMixin(ServiceState):
    """`authorize`: who a maintainer is, or AuthError."""

    def _token_backoff(self) -> Backoff:
        backoff = self._cache.get("token_backoff")
        if backoff is None:
            backoff = Backoff(free=FREE_FAILURES, base_s=1.0, max_s=900.0, clock=self._clock)
            self._cache["token_backoff"] = backoff
        return backoff

    def authorize(
        self, token: str | None = None, profile: Any = None, client: str | None = None
    ) -> str:
        """The maintainer's name if `token` matches SVR_ADMIN_TOKEN, or (on a Space) the
        OAuth `profile` (username, orgs) is in SVR_ADMINS; else AuthError. `client` (the
        client's address) is what wrong tokens are throttled by (module docstring)."""
        expected = self.settings.admin_token
        wait = 0.0
        if token:
            backoff, who = self._token_backoff(), client or "unknown client"
            wait = backoff.retry_after(who)
            if wait == 0 and expected and hmac.compare_digest(token.encode(), expected.encode()):
                backoff.succeeded(who)
                return "token"
            if wait == 0:
                backoff.failed(who)
        if profile is not None and self.settings.on_space and self.settings.admins:
            username = _profile_get(profile, "username") or _profile_get(
                profile, "preferred_username"
            )
            names = {str(username)} if username else set()
            for org in _profile_get(profile, "orgs") or []:
                org_name = (
                    org.get("preferred_username") or org.get("name")
                    if isinstance(org, dict)
                    else org
                )
                if org_name:
                    names.add(str(org_name))
            if names & set(self.settings.admins):
                return f"hf:{username}"
        if wait > 0:  # the token was not even looked at
            raise AuthError(
                "maintainer access refused: too many wrong tokens from this address; try again "
                f"in {math.ceil(wait)} s"
            )
        raise AuthError("maintainer access refused: wrong or missing token, or not an admin")


def _profile_get(profile: Any, key: str) -> Any:
    if isinstance(profile, dict):
        return profile.get(key)
    value = getattr(profile, key, None)
    if value is None and hasattr(profile, "get"):
        value = profile.get(key)
    return value
