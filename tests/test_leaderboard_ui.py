"""The Gradio tabs: page construction, the named API endpoints through gradio_client against a
launched server, and that files under SVR_HOME cannot be downloaded."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest
from leaderboard_fakes import make_service, scores_for, write_fake_archive

from leaderboard.figures import ecdf_figure, per_class_figure
from leaderboard.http import LEADERBOARD_JSON, leaderboard_routes
from leaderboard.service import LeaderboardService
from leaderboard.ui import add_leaderboard_tabs


def _build(service: LeaderboardService) -> gr.Blocks:
    with gr.Blocks() as demo:
        with gr.Tabs():
            add_leaderboard_tabs(service)
    return demo


def _api_names(demo: gr.Blocks) -> set[str]:
    return {fn.api_name for fn in demo.fns.values() if fn.api_name}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[tuple[LeaderboardService, str, list[str]]]:
    service, ids = make_service(tmp_path)
    service.start_worker()
    demo = _build(service)
    port = _free_port()
    routes = leaderboard_routes(service)
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True,
                app_kwargs={"routes": routes})  # fmt: skip
    try:
        yield service, f"http://127.0.0.1:{port}/", ids
    finally:
        demo.close()
        service.close()


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _assert_not_served(base: str, paths: list[Path]) -> None:
    for path in paths:
        assert path.is_file()
        for url in (f"{base}gradio_api/file={path}", f"{base}file={path}"):
            assert _get(url) in (403, 404), f"{path} was served at {url}"


def _poll(client, sid: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.predict(sid, api_name="/submission_status")
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.3)
    raise AssertionError(f"submission {sid} not finished: {status}")


def test_tabs_build_without_launching(tmp_path: Path) -> None:
    service, _ = make_service(tmp_path)
    try:
        demo = _build(service)
        assert {"submit", "submission_status", "leaderboard"} <= _api_names(demo)
        labels = [b.label for b in demo.blocks.values() if isinstance(b, gr.Tab)]
        assert labels == ["Leaderboard", "Submit", "Maintainers"]
        # Off a Space there is no login button (it breaks page construction there).
        assert not any(isinstance(b, gr.LoginButton) for b in demo.blocks.values())
    finally:
        service.close()


def test_tabs_build_on_a_space(tmp_path: Path) -> None:
    from leaderboard.ui import use_oauth

    service, _ = make_service(tmp_path, space_id="someone/space", admins=("someone",))
    try:
        demo = _build(service)  # must not break, with or without gradio[oauth]
        buttons = sum(isinstance(b, gr.LoginButton) for b in demo.blocks.values())
        assert buttons == (2 if use_oauth(True, service.settings.oauth_configured) else 0)
        assert {"submit", "submission_status", "leaderboard"} <= _api_names(demo)
    finally:
        service.close()


def test_handlers_of_the_tabs(tmp_path: Path) -> None:
    import numpy as np

    service, ids = make_service(tmp_path)
    try:
        rng = np.random.default_rng(0)
        for name, value in (("Clustering", 0.4), ("Retrieval", 0.45), ("Net", 0.7)):
            archive = write_fake_archive(
                tmp_path / f"{name}.zip", name, scores_for(ids, value, rng, 0.05)
            )
            service.submit(archive, {}, name.lower(), baseline=name != "Net")
        worker = service.make_worker()
        while worker.run_once() is not None:
            pass
        demo = _build(service)
        fns: dict[str, list] = {}
        for f in demo.fns.values():
            fns.setdefault(f.name, []).append(f.fn)
        table = fns["table"][0]("net", [], True, True, ["F@1% ↑", "vs Retrieval"], "")
        headers = table.value["headers"]
        assert headers[:4] == ["Tier", "Method", "F@1% ↑", "vs Retrieval"]
        assert "chair: F@1% ↑" in headers and len(table.value["data"]) == 1
        assert table.value["data"][0][3].startswith("better than Retrieval")
        exports = [fns[name][0]("", [], True, False) for name in ("export_csv", "export_json")]
        assert {Path(p).suffix for p in exports} == {".csv", ".json"}
        for p in exports:
            assert not Path(p).resolve().is_relative_to(service.settings.home)
        assert "Net" in Path(exports[0]).read_text()
        assert exports[0].rsplit("/", 1)[0] == exports[1].rsplit("/", 1)[0]  # one folder each
        class_table, bars, ecdf, recognition = fns["analysis"][0]([])
        assert class_table.columns.tolist() == ["Class", "Clustering", "Retrieval", "Net"]
        assert len(recognition) == 4  # each baseline against the other, Net against both
        per_class, items, gallery = fns["compare"][0](3, 1)
        assert len(per_class) == 3 and items.empty and gallery == []  # per-item: maintainers
        per_class, items, gallery = fns["compare"][0](3, 1, "s3cret")
        assert len(items) == 8 and len(gallery) == 8
        assert isinstance(gallery[0][0], np.ndarray)  # an image, never a path
        with pytest.raises(gr.Error, match="refused"):
            fns["apply"][0]("wrong", "1", "hide")
        with pytest.raises(gr.Error, match="refused"):
            fns["show_all"][0]("")
        message, everything = fns["apply"][0]("s3cret", "1, 2", "verify")
        assert "1: verify done" in message and len(everything) == 3
        assert fns["mine"][0]("net")["Status"].tolist() == ["done"]
        with pytest.raises(gr.Error, match="already submitted"):
            fns["submit_form"][0](str(tmp_path / "Net.zip"), "", "", "", "", "", "", "", "", "net")
    finally:
        service.close()


def test_figures_render_with_and_without_data() -> None:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"Class": ["chair", "table"], "A": [0.5, 0.6], "B": [0.2, None]})
    fig = per_class_figure(frame, "F@1%")
    assert len(fig.axes[0].patches) == 4
    fig = ecdf_figure(
        {"A": np.array([0.1, 0.5]), "Retrieval": np.array([0.2])}, {"Retrieval"}, "F@1%"
    )
    assert [line.get_linestyle() for line in fig.axes[0].lines] == ["-", "--"]
    assert ecdf_figure({}, set(), "F@1%").axes[0].texts  # an explicit "no entries" message


def test_api_submit_poll_and_table_with_a_launched_server(launched) -> None:
    from gradio_client import Client, handle_file

    service, base, ids = launched
    tmp = service.settings.home.parent
    client = Client(base, verbose=False)
    archive = write_fake_archive(tmp / "net.zip", "Net", scores_for(ids, 0.7))
    meta = json.dumps({"method": "API net", "paper_url": "https://example.org/paper"})
    sid = client.predict(handle_file(str(archive)), meta, "alice", api_name="/submit")
    assert isinstance(sid, str) and sid.startswith("s") and len(sid) == 17  # opaque
    status = _poll(client, sid)
    assert status["id"] == sid
    assert status["status"] == "done"
    assert status["overall"]["mean_of_class_means"]["fscore@0.01"] == pytest.approx(0.7)
    assert status["per_class"]["table"]["fscore@0.01"]["mean"] == pytest.approx(0.7)
    records = client.predict(api_name="/leaderboard")
    assert [r["Method"] for r in records] == ["API net"]
    assert records[0]["F@1% ↑"] == pytest.approx(0.7) and records[0]["Tier"] == 1
    with urllib.request.urlopen(base + LEADERBOARD_JSON.lstrip("/"), timeout=10) as response:
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.read()) == records  # the plain route: the same records

    # Errors reach the client with the service's reason.
    with pytest.raises(Exception, match="already submitted as submission"):
        client.predict(handle_file(str(archive)), meta, "alice", api_name="/submit")
    with pytest.raises(Exception, match="unknown metadata"):
        client.predict(handle_file(str(archive)), json.dumps({"x": 1}), "bob", api_name="/submit")
    with pytest.raises(Exception, match="no submission"):
        client.predict("4242", api_name="/submission_status")
    with pytest.raises(Exception, match="no submission"):  # internal ids are not public ids
        client.predict("1", api_name="/submission_status")

    # Nothing under SVR_HOME can be downloaded.
    stored = service.store.all()
    _assert_not_served(base, [service.settings.home / "svr.db", *stored])


@pytest.mark.slow
def test_end_to_end_with_real_scoring_on_the_tiny_benchmark(
    tmp_path: Path, tiny_benchmark: Path
) -> None:
    from gradio_client import Client, handle_file

    from leaderboard.archive import write_template
    from leaderboard.settings import LeaderboardSettings
    from svr.data.layout import Benchmark
    from svr.evaluation import Protocol

    benchmark = Benchmark(tiny_benchmark)
    archive = tmp_path / "sphere.zip"
    write_template(benchmark, archive, "voxels")
    settings = LeaderboardSettings(home=tmp_path / "home", poll_interval_s=0.1)
    service = LeaderboardService(settings, tiny_benchmark,
                                 protocol=Protocol(n_samples=1000, iou_resolutions=(32,)))  # fmt: skip
    service.start_worker()
    demo = _build(service)
    port = _free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        client = Client(base, verbose=False)
        sid = client.predict(handle_file(str(archive)), json.dumps({"method": "Sphere"}),
                             "alice", api_name="/submit")  # fmt: skip
        status = _poll(client, sid, timeout=120)
        assert status["status"] == "done", status
        n = len(benchmark.items("test"))
        assert status["progress"] == {"done": n, "total": n}
        assert set(status["per_class"]) == set(benchmark.class_names)
        assert 0 < status["overall"]["mean_of_class_means"]["iou"] < 1
        records = client.predict(api_name="/leaderboard")
        assert [r["Method"] for r in records] == ["Sphere"]

        # A broken archive: refused at once with the archive reader's reason.
        bad = tmp_path / "bad.zip"
        bad.write_bytes(b"definitely not a zip file")
        with pytest.raises(Exception, match="rejected"):
            client.predict(handle_file(str(bad)), "{}", "alice", api_name="/submit")

        # Neither the database, the stored archive nor the hidden ground truth is served.
        item = benchmark.items("test")[0]
        gt_files = sorted(p for p in benchmark.gt_dir(item).iterdir() if p.is_file())
        _assert_not_served(base, [settings.home / "svr.db", *service.store.all(), *gt_files[:2]])
    finally:
        demo.close()
        service.close()
