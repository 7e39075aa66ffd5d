"""Settings of the app: the one place in `svr` that reads environment variables.

| variable             | default                              | meaning                                           |
|----------------------|--------------------------------------|---------------------------------------------------|
| SVR_HOME             | ~/.local/share/svr-what3d            | where the app keeps prepared data (not served)    |
| SVR_BENCHMARK        | $SVR_HOME/benchmark                  | benchmark folder (built on first start if absent) |
| SVR_MODELS           | <repo>/assets/models                 | shipped weights, one folder per method            |
| SVR_PRESET           | default                              | benchmark preset built on first start             |
| SVR_SEED             | 0                                    | seed of the benchmark built on first start        |
| SVR_FRAME            | object                               | frame of that benchmark (object or viewer)        |
| SVR_TEST_SECRET      | (unset: public practice test split)  | maintainer's secret the test split is built from  |
| SVR_BUILD_WORKERS    | CPU count - 1 (at least 1)           | processes used to build it                        |
| SVR_PREPARE          | 1                                    | 0 disables background preparation (tests)         |
| SVR_TMP              | <system temp>/svr-what3d-sessions    | per-session output files (deleted on unload)      |
| SVR_EXAMPLES         | <system temp>/svr-what3d-examples    | example images made at first use                  |
| SVR_CONCURRENCY      | 2                                    | reconstructions run at the same time              |
| SVR_MAX_QUEUE        | 100                                  | requests waiting in the queue before refusal      |
| SVR_MAX_UPLOAD_MB    | 50                                   | largest upload accepted by the server (MB)        |
| SVR_MAX_BODY_MB      | 16                                   | largest other request body, e.g. JSON (MB)        |
| SVR_UPLOADS_MB       | 1024                                 | most the upload folder may hold (MB)              |
| SVR_UPLOAD_TTL       | 3600                                 | seconds an upload is kept                         |
| GRADIO_SERVER_NAME   | 127.0.0.1                            | interface to listen on (0.0.0.0 on a server)      |
| GRADIO_SERVER_PORT   | 7860                                 | port                                              |

SVR_HOME lies outside the working directory and the temporary directory on purpose:
Gradio serves files from those, and the hidden test split's ground truth must never be
downloadable. Gradio's upload folder is `$SVR_HOME/uploads` (`upload_dir`): the only part
of SVR_HOME that is served. The leaderboard has its own settings (`leaderboard.settings`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from svr.data.secret import TestSecret

__all__ = ["Settings", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[1]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r}: expected 1/0, true/false, yes/no or on/off")


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    """An integer variable of `env` (default when unset or blank); ValueError naming it."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected an integer") from None
    if value < minimum:
        raise ValueError(f"{name}={value}: must be at least {minimum}")
    return value


def _secret(env: Mapping[str, str]) -> TestSecret | None:
    """SVR_TEST_SECRET as a `TestSecret` (None when unset or blank)."""
    raw = env.get("SVR_TEST_SECRET", "")
    if not raw.strip():
        return None
    from svr.data.secret import TestSecret

    try:
        return TestSecret.from_text(raw)
    except ValueError as exc:
        raise ValueError(f"SVR_TEST_SECRET: {exc}") from None


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    raw = env.get(name)
    return Path(raw).expanduser().resolve() if raw else default


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from the environment, with the defaults in the table above."""

    home: Path
    benchmark_dir: Path
    models_dir: Path
    preset: str = "default"
    seed: int = 0
    frame: str = "object"
    build_workers: int = 1
    prepare: bool = True
    temp_root: Path = Path(tempfile.gettempdir()) / "svr-what3d-sessions"
    examples_dir: Path = Path(tempfile.gettempdir()) / "svr-what3d-examples"
    concurrency: int = 2
    max_queue: int = 100
    max_upload_mb: int = 50
    max_body_mb: int = 16
    uploads_mb: int = 1024
    upload_ttl_s: int = 3600
    server_name: str = "127.0.0.1"
    server_port: int = 7860
    test_secret: TestSecret | None = field(default=None, repr=False)

    @property
    def upload_dir(self) -> Path:
        """Gradio's upload folder (GRADIO_TEMP_DIR), under SVR_HOME."""
        return self.home / "uploads"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `env` (default: `os.environ`); ValueError on a bad value."""
        env = os.environ if env is None else env
        home = _path(env, "SVR_HOME", Path.home() / ".local" / "share" / "svr-what3d")
        tmp = Path(tempfile.gettempdir())
        frame = env.get("SVR_FRAME", "object")
        if frame not in ("viewer", "object"):
            raise ValueError(f"SVR_FRAME={frame!r}: expected 'viewer' or 'object'")
        return cls(
            home=home,
            benchmark_dir=_path(env, "SVR_BENCHMARK", home / "benchmark"),
            models_dir=_path(env, "SVR_MODELS", REPO_ROOT / "assets" / "models"),
            preset=env.get("SVR_PRESET", "default") or "default",
            seed=env_int(env, "SVR_SEED", 0),
            frame=frame,
            build_workers=env_int(
                env, "SVR_BUILD_WORKERS", max(1, (os.cpu_count() or 2) - 1), minimum=1
            ),
            prepare=_flag(env, "SVR_PREPARE", True),
            temp_root=_path(env, "SVR_TMP", tmp / "svr-what3d-sessions"),
            examples_dir=_path(env, "SVR_EXAMPLES", tmp / "svr-what3d-examples"),
            concurrency=env_int(env, "SVR_CONCURRENCY", 2, minimum=1),
            max_queue=env_int(env, "SVR_MAX_QUEUE", 100, minimum=1),
            max_upload_mb=env_int(env, "SVR_MAX_UPLOAD_MB", 50, minimum=1),
            max_body_mb=env_int(env, "SVR_MAX_BODY_MB", 16, minimum=1),
            uploads_mb=env_int(env, "SVR_UPLOADS_MB", 1024, minimum=1),
            upload_ttl_s=env_int(env, "SVR_UPLOAD_TTL", 3600, minimum=1),
            server_name=env.get("GRADIO_SERVER_NAME", "127.0.0.1") or "127.0.0.1",
            server_port=env_int(env, "GRADIO_SERVER_PORT", 7860, minimum=1),
            test_secret=_secret(env),
        )
