"""Authentication of maintainers: the maintainer token off a Space, Hugging Face OAuth
(allow-listed users and organisations) on one."""

from __future__ import annotations

import hmac
from typing import Any

from leaderboard.errors import AuthError
from leaderboard.state import ServiceState

__all__ = ["AuthMixin"]


class AuthMixin(ServiceState):
    """`authorize`: who a maintainer is, or AuthError."""

    def authorize(self, token: str | None = None, profile: Any = None) -> str:
        """The maintainer's name if `token` matches SVR_ADMIN_TOKEN, or (on a Space) the
        OAuth `profile` (username, orgs) is in SVR_ADMINS; else AuthError."""
        expected = self.settings.admin_token
        if token and expected and hmac.compare_digest(token.encode(), expected.encode()):
            return "token"
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
        raise AuthError("maintainer access refused: wrong or missing token, or not an admin")


def _profile_get(profile: Any, key: str) -> Any:
    if isinstance(profile, dict):
        return profile.get(key)
    value = getattr(profile, key, None)
    if value is None and hasattr(profile, "get"):
        value = profile.get(key)
    return value
