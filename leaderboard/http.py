"""Plain HTTP routes of the leaderboard, served beside Gradio's on the same server.

    GET /api/leaderboard.json  ->  the `/leaderboard` table as JSON records

Gradio's API answers a request without a session by building a fresh session state over
every component of the app (about 25 ms of CPU here per call); this route costs a fraction
of a millisecond when the table is cached, so scripts, badges and dashboards polling the
leaderboard cost the server almost nothing. Same records as the `/leaderboard` endpoint.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

__all__ = ["LEADERBOARD_JSON", "leaderboard_routes"]

LEADERBOARD_JSON = "/api/leaderboard.json"


def leaderboard_routes(service: Any) -> list[APIRoute]:
    """The routes for a `LeaderboardService` (pass them to FastAPI as `routes=`)."""

    def table() -> JSONResponse:  # sync: a cache miss recomputes in FastAPI's thread pool
        return JSONResponse(service.records(), headers={"Cache-Control": "no-cache"})

    return [APIRoute(LEADERBOARD_JSON, table, methods=["GET"], name="leaderboard_json")]
