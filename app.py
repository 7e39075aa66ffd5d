"""The web app: Reconstruct, Leaderboard, Submit and About tabs.

`build_app(settings) -> gr.Blocks` builds everything (cheap: models load on first use);
`python app.py` launches it. On a first start with nothing prepared the app serves at once
and, in a background thread with progress in the Reconstruct tab, builds the benchmark
into SVR_HOME and seeds the leaderboard's baselines (disable with SVR_PREPARE=0).
Configuration: environment variables, see `svr/settings.py` (and `leaderboard/settings.py`).
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

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
        service = LeaderboardService(lb, settings.benchmark_dir)
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


def build_app(settings: Settings | None = None) -> gr.Blocks:
    """Build the Blocks. Starts background preparation when `settings.prepare` is on."""
    settings = settings or Settings.from_env()
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


def launch_kwargs(settings: Settings, demo: gr.Blocks | None = None) -> dict[str, Any]:
    """Arguments of `Blocks.launch` for these settings (SVR_HOME is never served), with the
    plain HTTP routes `build_app` attached to `demo` (e.g. GET /api/leaderboard.json)."""
    return {
        "server_name": settings.server_name,
        "server_port": settings.server_port,
        "blocked_paths": [str(settings.home)],
        "max_file_size": f"{settings.max_upload_mb}mb",
        "show_error": True,
        "app_kwargs": {"routes": list(getattr(demo, "http_routes", []))},
    }


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app_settings = Settings.from_env()
    app_demo = build_app(app_settings)
    app_demo.launch(**launch_kwargs(app_settings, app_demo))
