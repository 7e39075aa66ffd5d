"""The web app: Reconstruct, Leaderboard, Submit and About tabs.

`build_app(settings) -> gr.Blocks` builds everything (cheap: models load on first use);
`python app.py` launches it. On a first start with nothing prepared the app serves at once
and then, in a background thread, builds the benchmark into SVR_HOME and seeds the
leaderboard's baselines (disable with SVR_PREPARE=0); the Reconstruct tab's status panel
(`svr.status`) and the console show each step's progress and the time left.
Configuration: environment variables, see `svr/settings.py` (and `leaderboard/settings.py`).

Nothing heavy is imported at module level: `python app.py` configures logging first and
says what it loads, so the console is never silent while gradio and torch import.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svr.limits import sweep_uploads
from svr.prepare import Preparation, Step, benchmark_ready, benchmark_step
from svr.settings import REPO_ROOT, Settings
from svr.status import ConsoleReporter, Problem, StatusSource, public_text

if TYPE_CHECKING:
    import gradio as gr

logger = logging.getLogger("app")

TITLE = "What do single-view 3D reconstruction networks learn?"

#: Loggers that are quiet below WARNING on the console (alembic's plugin set-up and
#: migration steps, httpx's request lines for Gradio's own start-up check).
QUIET_LOGGERS = ("alembic", "httpx", "urllib3")


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


def _seed_step(settings: Settings, service: Any, problems: list[Problem]) -> Step:
    """Submit each shipped method as a baseline, one at a time (progress: methods done of
    all); a method that could not be submitted becomes a `Problem` in `problems`."""

    def run(progress):
        from leaderboard.seed import BASELINE_NAMES, seed_baselines, seed_order
        from svr.models import REGISTRY

        names = seed_order(REGISTRY)  # quickest first
        for index, name in enumerate(names):
            display = BASELINE_NAMES.get(name, name)
            progress(index, len(names), f"{display}: predicting the test split")
            results = seed_baselines(
                service,
                settings.benchmark_dir,
                settings.models_dir,
                lambda message, index=index: progress(index, len(names), message),
                methods=[name],
            )
            for result in results:
                if result.outcome == "failed":
                    problems.append(
                        Problem(
                            f"{display} was not added to the leaderboard",
                            service.public_message(result.message).rstrip(".") + ".",
                            "the other baselines are not affected; the console log has the "
                            "details, and the next start of the app tries this one again",
                        )
                    )
        progress(len(names), len(names), "")
        return None

    # no time estimate: a method takes from seconds (voxel) to minutes (occupancy) to predict
    return Step(name="submit the baselines to the leaderboard", run=run, uniform=False)


def _status_source(
    settings: Settings, preparation: Preparation | None, service: Any, problems: list[Problem]
) -> StatusSource:
    """The status panel's source: preparation, the baselines' scoring, seeding problems."""
    folders = [(settings.home, "$SVR_HOME"), (settings.benchmark_dir, "<benchmark>"),
               (settings.models_dir, "<models>"), (REPO_ROOT, "<app>")]  # fmt: skip

    scoring = None
    if service is not None:
        from leaderboard.baseline_progress import baseline_progress

        def scoring():
            return baseline_progress(service)

    return StatusSource(
        preparation,
        scoring=scoring,
        problems=lambda: list(problems),
        benchmark_ready=lambda: benchmark_ready(settings.benchmark_dir),
        clean=lambda text: public_text(text, folders),
    )


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


def build_app(
    settings: Settings | None = None,
    preparation: Preparation | None = None,
    start_preparation: bool = True,
) -> gr.Blocks:
    """Build the Blocks.

    Args:
        settings: default `Settings.from_env()`.
        preparation: the background preparation to show and run; default: built from
            `settings` (benchmark, worker, baselines) when `settings.prepare` is on.
        start_preparation: start it now; False leaves that to `demo.svr_start()` (what
            `python app.py` calls once the server answers, so that preparation does not
            slow the start).
    """
    started = time.monotonic()
    import gradio as gr

    from svr.ui import add_about_tab, add_reconstruct_tab, make_context, session_cleanup

    logger.info("gradio and the app's code loaded in %.1f s", time.monotonic() - started)
    settings = settings or Settings.from_env()
    use_upload_folder(settings)
    started = time.monotonic()
    service, why_not = _leaderboard_service(settings)
    if service is not None:
        logger.info("leaderboard ready in %.1f s", time.monotonic() - started)
    problems: list[Problem] = []
    worker_now = service is not None and benchmark_ready(settings.benchmark_dir, settings)
    if preparation is None and settings.prepare:
        steps = [benchmark_step(settings)]
        if service is not None:
            steps += [] if worker_now else [_worker_step(service)]
            steps.append(_seed_step(settings, service, problems))
        preparation = Preparation(steps)
    status = _status_source(settings, preparation, service, problems)
    ctx = make_context(settings, preparation, status)
    started = time.monotonic()
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
        demo.unload(session_cleanup(ctx))
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
    once = threading.Lock()

    def start() -> None:
        """Start the preparation and its console lines (once)."""
        if preparation is None or not once.acquire(blocking=False):
            return
        preparation.start()
        ConsoleReporter(status.panel).start()

    demo.svr_start = start  # type: ignore[attr-defined]
    demo.svr_status = status  # type: ignore[attr-defined]
    if start_preparation:
        start()
    logger.info(
        "interface built in %.1f s (the methods' list imports torch; weights load on first use)",
        time.monotonic() - started,
    )
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

    from svr.limits import RequestLimits
    from svr.ui import CSS

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
        "css": CSS,
        "app_kwargs": {"routes": list(getattr(demo, "http_routes", [])), "middleware": [limits]},
    }


def configure_logging(level: int = logging.INFO) -> None:
    """Console logging for `python app.py`: one line per event, `QUIET_LOGGERS` at WARNING."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def main() -> None:
    """`python app.py`: build, serve, then start the background preparation."""
    configure_logging()
    started = time.monotonic()
    settings = Settings.from_env()
    logger.info("starting: loading gradio, torch and the reconstruction code")
    demo = build_app(settings, start_preparation=False)
    kwargs = launch_kwargs(settings, demo)
    demo.launch(prevent_thread_lock=True, **kwargs)
    logger.info(
        "serving at http://%s:%d after %.1f s",
        settings.server_name, demo.server_port or settings.server_port, time.monotonic() - started,
    )  # fmt: skip
    demo.svr_start()
    demo.block_thread()


if __name__ == "__main__":
    main()
