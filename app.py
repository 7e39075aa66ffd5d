"""The web app: Reconstruct, Leaderboard, Submit and About tabs.

`build_app(settings) -> gr.Blocks` builds everything (cheap: models load on first use);
`python app.py` launches it. On a first start with nothing prepared the app serves at once
and, in a background thread with progress in the Reconstruct tab, builds the benchmark
into SVR_HOME and seeds the leaderboard's baselines (disable with SVR_PREPARE=0).
Configuration: environment variables, see `svr/settings.py` (and `leaderboard/settings.py`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import gradio as gr

from svr.limits import RequestLimits, sweep_uploads
from svr.prepare import Preparation, Step, benchmark_ready, benchmark_step
from svr.settings import Settings
from svr.ui import add_about_tab, add_reconstruct_tab, make_context

logger = logging.getLogger("app")

TITLE = "What do single-view 3D reconstruction networks learn?"


def _leaderboard_service(settings: Settings) -> tuple[Any | None, str]:
    """(LeaderboardService or None, reason it is unavailable)."""
    try:
        from leaderboard.service import LeaderboardService
        from leaderboard.settings import LeaderboardSettings
    except ImportError as exc:
        return None, f"the leaderboard package is not installed ({exc})"
    try:
        lb = LeaderboardSettings.from_env()
        if lb.home != settings.home:  # settings made for a test: keep both in one home
            default_url = f"sqlite:///{lb.home / 'svr.db'}"
            url = "" if lb.database_url == default_url else lb.database_url
            lb = lb.with_(home=settings.home, database_url=url)
        service = LeaderboardService(lb, settings.benchmark_dir)  # cleans stale scratch
    except Exception as exc:  # noqa: BLE001 - shown in the UI; the demo still works
        logger.exception("leaderboard unavailable")
        return None, f"the leaderboard could not start: {type(exc).__name__}: {exc}"
    return service, ""


def _worker_step(service: Any) -> Step:
    return Step(
        name="start the leaderboard's scoring worker", run=lambda progress: service.start_worker()
    )


def _seed_step(settings: Settings, service: Any) -> Step:
    def run(progress):
        from leaderboard.seed import seed_baselines
        from svr.models import REGISTRY

        seen = [0]

        def message(text: str) -> None:
            seen[0] += 1
            progress(seen[0], len(REGISTRY), text)

        return seed_baselines(service, settings.benchmark_dir, settings.models_dir, message)

    return Step(name="submit the baselines to the leaderboard", run=run)


def use_upload_folder(settings: Settings) -> Path:
    """Make Gradio keep uploads (and its cached copies of outputs) in `settings.upload_dir`
    under SVR_HOME, and sweep uploads older than `settings.upload_ttl_s`.

    Gradio 6 reads GRADIO_TEMP_DIR when each component is created (`Block.GRADIO_CACHE`)
    and when the server app is created at launch (`App.uploaded_file_dir`), so setting it
    here, before any component, moves every upload; only its video and MCP helpers read it
    at import, and the app uses neither.
    """
    folder = settings.upload_dir
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    sweep_uploads(folder, settings.upload_ttl_s)
    return folder


def build_app(settings: Settings | None = None) -> gr.Blocks:
    """Build the Blocks. Starts background preparation when `settings.prepare` is on."""
    settings = settings or Settings.from_env()
    use_upload_folder(settings)
    service, why_not = _leaderboard_service(settings)
    preparation = None
    worker_now = service is not None and benchmark_ready(settings.benchmark_dir, settings)
    if settings.prepare:
        steps = [benchmark_step(settings)]
        if service is not None:
            steps += [] if worker_now else [_worker_step(service)]
            steps.append(_seed_step(settings, service))
        preparation = Preparation(steps)
    ctx = make_context(settings, preparation)
    with gr.Blocks(title=TITLE, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(
            f"# {TITLE}\nSingle-view 3D reconstruction: a demo, a benchmark and a leaderboard."
        )
        with gr.Tabs():
            add_reconstruct_tab(ctx)
            if service is not None:
                from leaderboard.ui import add_leaderboard_tabs

                add_leaderboard_tabs(service)
            else:
                with gr.Tab("Leaderboard"):
                    gr.Markdown(f"The leaderboard is unavailable: {why_not}.")
            add_about_tab(settings)

        def cleanup(request: gr.Request) -> None:
            ctx.reconstructor.sessions.cleanup(getattr(request, "session_hash", None))

        demo.unload(cleanup)
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.max_queue)
    # plain HTTP routes served beside Gradio's (see `launch_kwargs`)
    demo.http_routes = []  # type: ignore[attr-defined]
    if service is not None:
        from leaderboard.http import leaderboard_routes

        demo.http_routes = leaderboard_routes(service)  # type: ignore[attr-defined]
    if (
        service is not None
        and hasattr(service, "start_worker")
        and benchmark_ready(settings.benchmark_dir, settings)
    ):
        service.start_worker()
    elif service is not None and preparation is not None:
        preparation.on_finish(service.start_worker)
    if preparation is not None:
        preparation.start()
    return demo


def _blocked_paths(settings: Settings) -> list[str]:
    """Everything under SVR_HOME but the upload folder, and the benchmark wherever it is.

    Gradio checks blocked paths before anything else, including its own upload folder, so
    SVR_HOME itself cannot be blocked; its entries are (those present at launch and the ones
    the app creates), and nothing else under it is served in any case (Gradio serves only
    its upload folder and files the app returns).
    """
    home = settings.home
    names = {"benchmark", "svr.db", "svr.db-journal", "svr.db-wal", "svr.db-shm", "archives",
             "scratch", "backup"}  # fmt: skip
    if home.is_dir():
        names |= {p.name for p in home.iterdir()}
    names.discard(settings.upload_dir.name)
    return sorted({str(home / n) for n in names} | {str(settings.benchmark_dir)})


def launch_kwargs(settings: Settings, demo: gr.Blocks | None = None) -> dict[str, Any]:
    """Arguments of `Blocks.launch` for these settings (nothing of SVR_HOME is served but the
    upload folder), with the plain HTTP routes `build_app` attached to `demo` (e.g. GET
    /api/leaderboard.json) and the request limits (`svr.limits.RequestLimits`: bodies at
    most SVR_MAX_BODY_MB, uploads at most SVR_MAX_UPLOAD_MB, the upload folder at most
    SVR_UPLOADS_MB)."""
    from starlette.middleware import Middleware

    limits = Middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_mb << 20,
        max_upload_bytes=settings.max_upload_mb << 20,
        upload_dir=settings.upload_dir,
        upload_cap_bytes=settings.uploads_mb << 20,
        upload_ttl_s=float(settings.upload_ttl_s),
    )
    return {
        "server_name": settings.server_name,
        "server_port": settings.server_port,
        "blocked_paths": _blocked_paths(settings),
        "max_file_size": f"{settings.max_upload_mb}mb",
        "show_error": True,
        "app_kwargs": {"routes": list(getattr(demo, "http_routes", [])), "middleware": [limits]},
    }


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app_settings = Settings.from_env()
    app_demo = build_app(app_settings)
    app_demo.launch(**launch_kwargs(app_settings, app_demo))
