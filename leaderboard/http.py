"""Plain HTTP routes of the leaderboard, served beside Gradio's on the same server.

    GET /api/leaderboard.json  ->  the `/leaderboard` table as JSON records
    GET /api/test-inputs.zip   ->  the test split's inputs (views, cameras, item ids; no
                                   ground truth), built once per benchmark (`svr.data.inputs`)

Gradio's API answers a request without a session by building a fresh session state over
every component of the app (about 25 ms of CPU here per call); this route costs a fraction
of a millisecond when the table is cached, so scripts, badges and dashboards polling the
leaderboard cost the server almost nothing. Same records as the `/leaderboard` endpoint.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute

__all__ = ["LEADERBOARD_JSON", "TEST_INPUTS_ZIP", "leaderboard_routes", "test_inputs_path"]

LEADERBOARD_JSON = "/api/leaderboard.json"
TEST_INPUTS_ZIP = "/api/test-inputs.zip"


def test_inputs_path(service: Any) -> Any:
    """The cached test inputs zip of the service's benchmark (built on first use under
    SVR_HOME/cache); ValueError with a user-facing reason when there is no benchmark yet."""
    from svr.data.inputs import cached_test_inputs

    folder = getattr(service, "benchmark_dir", None)
    if folder is None or not (folder / "benchmark.json").is_file():
        raise ValueError("the benchmark is not ready yet; try again in a few minutes")
    return cached_test_inputs(folder, service.settings.home / "cache")


def leaderboard_routes(service: Any) -> list[APIRoute]:
    """The routes for a `LeaderboardService` (pass them to FastAPI as `routes=`)."""

    def table() -> JSONResponse:  # sync: a cache miss recomputes in FastAPI's thread pool
        return JSONResponse(service.records(), headers={"Cache-Control": "no-cache"})

    def inputs() -> Any:
        try:
            path = test_inputs_path(service)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        return FileResponse(path, media_type="application/zip", filename="test-inputs.zip")

    return [
        APIRoute(LEADERBOARD_JSON, table, methods=["GET"], name="leaderboard_json"),
        APIRoute(TEST_INPUTS_ZIP, inputs, methods=["GET"], name="test_inputs_zip"),
    ]
