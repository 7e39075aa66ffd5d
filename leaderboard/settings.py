"""Settings of the leaderboard: the one place in `leaderboard` that reads the environment.

| variable                  | default                     | meaning                                          |
|---------------------------|-----------------------------|--------------------------------------------------|
| SVR_HOME                  | ~/.local/share/svr-what3d   | all state: svr.db, archives/, scratch/ (not served) |
| DATABASE_URL              | sqlite:///$SVR_HOME/svr.db  | any SQLAlchemy URL                               |
| SVR_ADMIN_TOKEN           | (unset: token login off)    | maintainer token for the Maintainers tab         |
| SVR_ADMINS                | (empty)                     | comma-separated HF user/org names (on a Space)   |
| SPACE_ID                  | (unset)                     | set by Hugging Face Spaces; enables OAuth        |
| OAUTH_CLIENT_ID           | (unset)                     | set by a Space with `hf_oauth: true`; OAuth needs it |
| SVR_MAX_PER_DAY           | 5                           | submissions per submitter per 24 h (failed ones excluded) |
| SVR_MAX_CONCURRENT        | 2                           | unfinished submissions per submitter             |
| SVR_MAX_ATTEMPTS          | 3                           | interrupted scoring attempts before a job fails  |
| SVR_SCORING_TIME_LIMIT    | 3600                        | seconds one scoring job may take                 |
| SVR_HEARTBEAT_STALE       | 300                         | seconds without heartbeat before a job is requeued |
| SVR_HEARTBEAT_INTERVAL    | 10                          | seconds between a worker's heartbeats (< SVR_HEARTBEAT_STALE) |
| SVR_POLL_INTERVAL         | 2                           | seconds an idle worker waits before looking again |
| SVR_SHARD_ITEMS           | 1000                        | a submission of more test items is split into shards of about this many, scored by every worker (0: never split) |
| SVR_MAX_ARCHIVE_MB        | 2048                        | largest archive accepted (MB)                    |
| SVR_SCRATCH_MB            | 1024                        | most a .tar.gz may take unpacked for validation (MB) |
| SVR_SCORING_DEVICE        | (auto)                      | cpu or cuda                                      |
| SVR_BACKUP_REPO           | (unset: no backup)          | private HF dataset repo id for backups           |
| SVR_BACKUP_INTERVAL       | 3600                        | seconds between backups                          |
| SVR_REQUIRE_KEYS          | 0                           | 1: off a Space, submitting needs a key (`python -m leaderboard keys add NAME`) |
| SVR_MAX_REFUSALS          | 40                          | refused submissions per identity and per client address per window |
| SVR_REFUSAL_WINDOW        | 3600                        | that window (s)                                  |

Submitter identity off a Space is a free-text name: it is NOT authenticated (open mode), so
the per-submitter limits there only stop accidents, not abuse; the per-address limit on
refusals and SVR_REQUIRE_KEYS are what hold against abuse.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from svr.settings import env_int

__all__ = ["LeaderboardSettings", "DEFAULT_HOME"]

DEFAULT_HOME = Path("~/.local/share/svr-what3d")


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a number") from None
    if not value > minimum:
        raise ValueError(f"{name}={value}: must be greater than {minimum}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={raw!r}: expected 1 or 0")


@dataclass(frozen=True)
class LeaderboardSettings:
    """Where the leaderboard keeps its state and how it limits submissions.

    Times are in seconds, sizes in bytes. `home` holds `svr.db`, `archives/` and `scratch/`.
    """

    home: Path
    database_url: str = ""
    admin_token: str | None = None
    admins: tuple[str, ...] = ()
    space_id: str | None = None
    oauth_configured: bool = False  # OAUTH_CLIENT_ID set: the Space has `hf_oauth: true`
    max_per_day: int = 5
    max_concurrent: int = 2
    max_attempts: int = 3
    scoring_time_limit_s: float = 3600.0
    heartbeat_stale_s: float = 300.0
    heartbeat_interval_s: float = 10.0
    poll_interval_s: float = 2.0
    shard_items: int = 1000  # split larger submissions into shards (leaderboard.shards); 0: off
    max_archive_bytes: int = 2048 * (1 << 20)
    scratch_budget_bytes: int = 1024 * (1 << 20)
    scoring_device: str | None = None
    backup_repo: str | None = None
    backup_interval_s: float = 3600.0
    require_keys: bool = False
    max_refusals: int = 40
    refusal_window_s: float = 3600.0
    max_per_address: int = 10  # accepted submissions per client address per 24 h

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser().resolve())
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.home / 'svr.db'}")

    @property
    def archives_dir(self) -> Path:
        return self.home / "archives"

    @property
    def scratch_dir(self) -> Path:
        return self.home / "scratch"

    @property
    def uploads_dir(self) -> Path:
        """The web server's upload folder (uploaded archives are removed from it once
        stored or refused)."""
        return self.home / "uploads"

    @property
    def on_space(self) -> bool:
        return bool(self.space_id)

    @property
    def keys_required(self) -> bool:
        """Whether submitting needs a submitter key (SVR_REQUIRE_KEYS, off a Space only: a
        Space authenticates submitters with Hugging Face login)."""
        return self.require_keys and not self.on_space

    @property
    def authenticated(self) -> bool:
        """Whether the submitter's name is authenticated (a Space, or keys required)."""
        return self.on_space or self.keys_required

    def with_(self, **changes: object) -> LeaderboardSettings:
        """A copy with some fields changed (tests)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LeaderboardSettings:
        """Read the settings from environment variables (see the module docstring)."""
        env = os.environ if env is None else env
        home = Path(env.get("SVR_HOME") or DEFAULT_HOME).expanduser()
        admins = tuple(a.strip() for a in env.get("SVR_ADMINS", "").split(",") if a.strip())
        device = (env.get("SVR_SCORING_DEVICE") or "").strip() or None
        if device not in (None, "cpu", "cuda"):
            raise ValueError(f"SVR_SCORING_DEVICE={device!r}: expected cpu or cuda")
        stale = _float(env, "SVR_HEARTBEAT_STALE", 300.0)
        beat = _float(env, "SVR_HEARTBEAT_INTERVAL", min(10.0, stale / 3))
        if beat >= stale:
            raise ValueError(
                f"SVR_HEARTBEAT_INTERVAL={beat:g} must be shorter than SVR_HEARTBEAT_STALE="
                f"{stale:g} (else live workers look dead)"
            )
        return cls(
            home=home,
            database_url=env.get("DATABASE_URL", "").strip(),
            admin_token=env.get("SVR_ADMIN_TOKEN") or None,
            admins=admins,
            space_id=env.get("SPACE_ID") or None,
            oauth_configured=bool(env.get("OAUTH_CLIENT_ID")),
            max_per_day=env_int(env, "SVR_MAX_PER_DAY", 5),
            max_concurrent=env_int(env, "SVR_MAX_CONCURRENT", 2),
            max_attempts=env_int(env, "SVR_MAX_ATTEMPTS", 3, minimum=1),
            scoring_time_limit_s=_float(env, "SVR_SCORING_TIME_LIMIT", 3600.0),
            heartbeat_stale_s=stale,
            heartbeat_interval_s=beat,
            poll_interval_s=_float(env, "SVR_POLL_INTERVAL", 2.0),
            shard_items=env_int(env, "SVR_SHARD_ITEMS", 1000, minimum=0),
            max_archive_bytes=env_int(env, "SVR_MAX_ARCHIVE_MB", 2048, minimum=1) * (1 << 20),
            scratch_budget_bytes=env_int(env, "SVR_SCRATCH_MB", 1024, minimum=1) * (1 << 20),
            scoring_device=device,
            backup_repo=(env.get("SVR_BACKUP_REPO") or "").strip() or None,
            backup_interval_s=_float(env, "SVR_BACKUP_INTERVAL", 3600.0),
            require_keys=_flag(env, "SVR_REQUIRE_KEYS"),
            max_refusals=env_int(env, "SVR_MAX_REFUSALS", 40, minimum=1),
            max_per_address=env_int(env, "SVR_MAX_PER_ADDRESS", 10, minimum=1),
            refusal_window_s=_float(env, "SVR_REFUSAL_WINDOW", 3600.0),
        )
