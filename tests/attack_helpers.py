"""Helpers of the attack regression tests (test_attacks_identity, test_attacks_leaks): a
leaderboard service on a real SQLite file with an injected clock, served by a real Gradio
server on loopback, and a caller of the tabs' private handlers through Gradio's queue
protocol, the way the browser (or an attacker's script) calls them."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app_helpers import free_port
from leaderboard_fakes import fake_open, fake_score, make_fake_benchmark


class Clock:
    """A clock the tests move by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_service(tmp_path: Path, clock: Clock | None = None, **changes: Any) -> tuple[Any, list]:
    """A LeaderboardService on a fresh SQLite file with the fake benchmark, opener and scorer
    (as `leaderboard_fakes.make_service`), with `clock` for its rate limits."""
    from leaderboard.service import LeaderboardService
    from leaderboard.settings import LeaderboardSettings

    bench = tmp_path / "bench"
    ids = make_fake_benchmark(bench)
    options: dict[str, Any] = {
        "poll_interval_s": 0.05, "heartbeat_interval_s": 0.05, "admin_token": "s3cret",
    }  # fmt: skip
    options.update(changes)
    settings = LeaderboardSettings(home=tmp_path / "home", **options)
    service = LeaderboardService(
        settings, bench, score_fn=fake_score, open_fn=fake_open, clock=clock
    )
    return service, ids


@contextmanager
def served(service: Any, exports: Any = None) -> Iterator[tuple[str, Any]]:
    """(base URL, demo) of the leaderboard tabs of `service` on a loopback port."""
    import gradio as gr

    from leaderboard.http import leaderboard_routes
    from leaderboard.ui import add_leaderboard_tabs

    with gr.Blocks() as demo:
        with gr.Tabs():
            add_leaderboard_tabs(service, exports)
    demo.queue(default_concurrency_limit=2, max_size=100)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True,
                app_kwargs={"routes": leaderboard_routes(service)})  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}/", demo
    finally:
        demo.close()


def call_handler(
    base: str, demo: Any, name: str, data: list[Any], session: str | None = None,
    timeout: float = 60,
) -> Any:  # fmt: skip
    """Call the tab handler named `name` through the queue (POST queue/join, then the event
    stream), as the page does, in page session `session` (default: a fresh one); its
    outputs, or RuntimeError with the message it refused with."""
    index = next(i for i, f in demo.fns.items() if f.name == name)
    session = session or uuid.uuid4().hex[:12]
    body = json.dumps({"data": data, "fn_index": index, "session_hash": session,
                       "event_data": None, "trigger_id": None}).encode()  # fmt: skip
    request = urllib.request.Request(
        base + "gradio_api/queue/join", body, {"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=timeout).read()
    url = base + f"gradio_api/queue/data?session_hash={session}"
    with urllib.request.urlopen(url, timeout=timeout) as stream:
        for raw in stream:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed":
                if not message.get("success"):
                    raise RuntimeError(message["output"].get("error") or "refused")
                return message["output"]["data"]
    raise RuntimeError("the event stream ended without a result")


def upload(base: str, path: Path) -> dict[str, Any]:
    """Upload a file as the page does (POST gradio_api/upload); the FileData to pass to a
    handler's file input."""
    import httpx

    with open(path, "rb") as fh:
        response = httpx.post(base + "gradio_api/upload", files={"files": (path.name, fh)})
    response.raise_for_status()
    (server_path,) = response.json()
    return {"path": server_path, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def submit(client: Any, archive: Path, submitter: str, metadata: dict | None = None,
           key: str | None = None) -> str:  # fmt: skip
    """`/submit` through gradio_client; the public id."""
    from gradio_client import handle_file

    args: list[Any] = [handle_file(str(archive)), json.dumps(metadata or {}), submitter]
    if key is not None:
        args.append(key)
    return str(client.predict(*args, api_name="/submit"))
