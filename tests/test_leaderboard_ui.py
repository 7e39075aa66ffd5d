"""The Gradio tabs: page construction, the named API endpoints through gradio_client against a
launched server, and that files under SVR_HOME cannot be downloaded."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pandas as pd
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


def _handlers(demo: gr.Blocks) -> dict[str, list]:
    fns: dict[str, list] = {}
    for f in demo.fns.values():
        fns.setdefault(f.name, []).append(f.fn)
    return fns


THREE_DECIMALS = re.compile(r"^(–|-?\d+\.\d{3}( ± \d+\.\d{3})?)$")


def _skipped(value: object) -> bool:
    """Whether a handler left an output as it was (`gr.skip()`)."""
    return isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1


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
        fns = _handlers(demo)
        board, note = fns["table"][0]("net", [], True, ["F@1% ↑ ± 95% CI", "vs Retrieval"], "")
        headers = board.value["headers"]
        assert headers == ["Tier", "Method", "F@1% ↑ ± 95% CI", "vs Retrieval"] and not note
        assert len(board.value["data"]) == 1 and board.visible
        assert board.value["data"][0][3].startswith("better, p ")
        empty, note = fns["table"][0]("no such method", [], True, [], "")
        assert not empty.visible and note == "No entry matches these filters."
        exports = [fns[name][0]("", [], True, False) for name in ("export_csv", "export_json")]
        assert {Path(p).suffix for p in exports} == {".csv", ".json"}
        for p in exports:
            assert not Path(p).resolve().is_relative_to(service.settings.home)
        assert "Net" in Path(exports[0]).read_text()
        assert "chair: F@1% ↑" in Path(exports[0]).read_text()  # exports carry every class
        assert exports[0].rsplit("/", 1)[0] == exports[1].rsplit("/", 1)[0]  # one folder each
        ecdf, recognition, message = fns["analysis"][0]([])
        assert ecdf.visible and recognition.visible and not message
        assert len(recognition.value["data"]) == 4  # each baseline against the other, Net both
        columns = recognition.value["headers"]
        for row in recognition.value["data"]:
            cells = dict(zip(columns, row, strict=True))
            assert THREE_DECIMALS.match(cells["KS D"]), cells
            assert THREE_DECIMALS.match(cells["Mean difference"]), cells
            assert cells["Wilcoxon p"] == "< 0.001" or THREE_DECIMALS.match(cells["Wilcoxon p"])
        per_class, items, gallery = fns["compare"][0](3, 1)
        assert len(per_class) == 3 and items.empty and gallery == []  # per-item: maintainers
        assert all(THREE_DECIMALS.match(v) for v in per_class["Difference (A - B)"])
        per_class, items, gallery = fns["compare"][0](3, 1, "s3cret")
        assert len(items) == 8 and len(gallery) == 8
        assert isinstance(gallery[0][0], np.ndarray)  # an image, never a path
        # A refused maintainer action is a sentence; the table is left as it was.
        message, table = fns["apply"][0]("wrong", "1", "hide")
        assert message.startswith("**Refused.** maintainer access refused") and _skipped(table)
        with pytest.raises(gr.Error, match="refused"):
            fns["show_all"][0]("")
        message, table = fns["apply"][0]("s3cret", "x", "hide")
        assert message.startswith("Submission ids: numbers") and _skipped(table)
        message, everything = fns["apply"][0]("s3cret", "1, 2", "verify")
        assert "1: verify done" in message and len(everything) == 3
        mine = fns["mine"][0]("net")
        headline = service.table().set_index("Method").loc["Net", "F@1% ↑"]
        assert mine["Status"].tolist() == ["done"] and mine["Score"].tolist() == [f"{headline:.3f}"]
        assert mine["Leaderboard"].tolist() == ["[row #3](?entry=3)"]
        assert mine["Progress"].tolist() == [f"{len(ids)} of {len(ids)} items"]
        with pytest.raises(gr.Error, match="already submitted"):
            fns["submit_form"][0](str(tmp_path / "Net.zip"), "", "", "", "", "", "", "", "", "net")
    finally:
        service.close()


def test_leaderboard_table_reads_at_a_glance(tmp_path: Path, tiny_benchmark: Path) -> None:
    """Verdict columns by default, 3 decimals, intervals as "0.341 ± 0.015", kinds told
    apart, links, and a per-class heat map of all 13 classes."""
    from board_helpers import SUBMISSION, populate
    from leaderboard_fakes import fake_open, fake_score

    from leaderboard.settings import LeaderboardSettings
    from svr.data.layout import Benchmark

    bench = Benchmark(tiny_benchmark)
    ids = [i.item_id for i in bench.items("test")]
    settings = LeaderboardSettings(home=tmp_path / "home", poll_interval_s=0.05)
    service = LeaderboardService(settings, tiny_benchmark, score_fn=fake_score,
                                 open_fn=fake_open)  # fmt: skip
    try:
        populate(service, ids, tmp_path)
        demo = _build(service)
        labels = [b.label for b in demo.blocks.values() if isinstance(b, gr.Tab)]
        assert labels == ["Leaderboard", "Submit"]  # no maintainer configured: no tab
        columns = next(
            b for b in demo.blocks.values()
            if isinstance(b, gr.CheckboxGroup) and b.label == "Columns shown"
        )  # fmt: skip
        assert {"vs Clustering", "vs Retrieval"} <= set(columns.value)  # shown by default
        fns = _handlers(demo)
        board, _ = fns["table"][0]("", [], True, columns.value, "")
        frame = pd.DataFrame(board.value["data"], columns=board.value["headers"])
        assert {"vs Clustering", "vs Retrieval", "Kind", "Links"} <= set(frame.columns)
        assert "Baseline" not in frame.columns
        kinds = dict(zip(frame["Method"], frame["Kind"], strict=True))
        assert kinds["Clustering"] == kinds["Retrieval"] == "baseline"
        assert kinds["Oracle NN (uses ground truth)"] == kinds["Mean shape"] == "reference"
        assert kinds[SUBMISSION] == "submission"
        for column in ("F@1% ↑ ± 95% CI", "IoU ↑", "Chamfer-L1 ↓"):
            assert frame[column].map(lambda v: bool(THREE_DECIMALS.match(v))).all(), column
        assert frame["F@1% ↑ ± 95% CI"].str.contains(" ± ").all()
        verdicts = frame.set_index("Method")
        assert verdicts.loc["Clustering", "vs Clustering"] == "–"  # not against itself
        assert re.match(r"^(better|worse|n\.s\.), p (<|=) \d\.\d+$",
                        verdicts.loc[SUBMISSION, "vs Retrieval"])  # fmt: skip
        assert verdicts.loc[SUBMISSION, "Links"] == (
            "[paper](https://example.org/paper) · [code](https://example.org/code)"
        )
        # The API keeps numbers (and its Baseline flag), now with the kind beside it.
        record = next(r for r in service.records() if r["Method"] == "Mean shape")
        assert record["Baseline"] == "baseline" and record["Kind"] == "reference"
        assert isinstance(record["F@1% ↑"], float)

        heatmap, bars = fns["refresh_all"][0]("", [], True, columns.value, "")[2:]
        assert len(bench.class_names) == 13
        for cls in bench.class_names:
            assert f">{cls}</th>" in heatmap, cls
        cells = re.findall(r"<td [^>]*>([^<]*)</td>", heatmap)
        assert len(cells) == 8 * 14 and all(THREE_DECIMALS.match(c) for c in cells)
        assert "background-color" in heatmap  # a heat map, not plain numbers
        assert bars.startswith('<img src="data:image/png;base64,')
        again = fns["refresh_all"][0]("", [], True, columns.value, "")[3]
        assert again is bars  # drawn once per change of the leaderboard
        from leaderboard.reads import MEMO_MAX

        for k in range(MEMO_MAX + 5):  # hostile searches cannot grow the memo without bound
            service.memo(("probe", k), lambda: "x")
        assert len(service._analysis()["memo"]) == MEMO_MAX
    finally:
        service.close()


def test_scoring_queue_and_my_submissions(tmp_path: Path) -> None:
    service, ids = make_service(tmp_path)
    try:
        first = service.submit(
            write_fake_archive(tmp_path / "a.zip", "A", scores_for(ids, 0.5)), {}, "ann"
        )
        service.submit(write_fake_archive(tmp_path / "b.zip", "B", scores_for(ids, 0.6)), {}, "bo")
        queue = service.queue_table()
        assert queue["Position"].tolist() == [1, 2] and queue["Method"].tolist() == ["A", "B"]
        assert queue["Status"].tolist() == ["waiting", "waiting"]
        worker = service.make_worker()
        assert worker.claim() == first
        service._set(first, progress_done=5)
        queue = service.queue_table()
        assert queue["Status"].tolist() == ["being scored", "waiting"]
        assert queue["Items"].tolist()[0] == f"5 of {len(ids)} items"
        mine = service.submissions_of("bo")
        assert mine["Progress"].tolist() == ["waiting: position 2 in the queue"]
        assert service.status(mine["ID"].iloc[0])["queue_position"] == 2
        assert service.status(first)["queue_position"] == 1
        assert service.submissions_of("ann")["Progress"].tolist()[0].startswith("5 of ")
        fns = _handlers(_build(service))
        table, head, _ = fns["queue"][0]()
        assert table.visible and "2 submission(s)" in head and "A (5 of" in head
    finally:
        service.close()
    service, _ = make_service(tmp_path / "empty")
    try:
        table, head, _ = _handlers(_build(service))["queue"][0]()
        assert not table.visible and head == ""  # nothing scored: no empty box
    finally:
        service.close()


def test_a_rejected_archive_shows_its_name_and_what_to_do(
    tmp_path: Path, tiny_benchmark: Path
) -> None:
    from leaderboard.settings import LeaderboardSettings

    service = LeaderboardService(LeaderboardSettings(home=tmp_path / "home"), tiny_benchmark)
    try:
        fns = _handlers(_build(service))
        upload = tmp_path / "upload-folder" / "my predictions.zip"
        upload.parent.mkdir()
        upload.write_bytes(b"not a zip at all")
        request = gr.Request(session_hash="page-1")
        message, mine = fns["submit_form"][0](str(upload), "", "", "", "", "", "", "", "", "eve",
                                              "", None, request)  # fmt: skip
        assert "my predictions.zip" in message and "submit again" in message
        assert not re.search(r"[0-9a-f]{64}", message)
        row = mine.iloc[0]
        assert row["Status"] == "failed" and row["Method"] == "my predictions.zip"
        assert "my predictions.zip" in row["Reason"] and "What to do" in row["Reason"]
        assert not re.search(r"[0-9a-f]{64}", row["Reason"])
        # Another browser session (or after a reload) reads the upload's name from the
        # database (revision 0005), never the stored archive's hash name or "(unnamed)".
        other = fns["mine"][0]("eve", "", None, gr.Request(session_hash="page-2")).iloc[0]
        assert other["Method"] == "my predictions.zip"
        assert "my predictions.zip" in other["Reason"]
        assert not re.search(r"[0-9a-f]{64}", other["Reason"])
    finally:
        service.close()


def test_figures_render_with_and_without_data(tmp_path: Path) -> None:
    import numpy as np

    from leaderboard.figures import figure_html, save_png

    frame = pd.DataFrame({"Class": ["chair", "table"], "A": [0.5, 0.6], "B": [0.2, None],
                          "Oracle": [0.9, 0.8]})  # fmt: skip
    fig = per_class_figure(frame, "F@1%", baselines={"B"}, references={"Oracle"})
    ax = fig.axes[0]
    assert len(ax.patches) == 6
    assert [p.get_hatch() for p in ax.patches[::2]] == [None, "//", ".."]
    assert ax.get_legend() is None and fig.legends  # the legend sits outside the axes
    assert 1.0 in list(ax.get_yticks()) and ax.get_ylim() == (0, 1)
    save_png(fig, tmp_path / "bars.png")
    fig = ecdf_figure(
        {"A": np.array([0.1, 0.5]), "Retrieval": np.array([0.2]), "Oracle": np.array([0.9])},
        {"Retrieval"}, "F@1%", references={"Oracle"},
    )  # fmt: skip
    assert [line.get_linestyle() for line in fig.axes[0].lines] == ["-", "--", ":"]
    assert 1.0 in list(fig.axes[0].get_yticks()) and fig.axes[0].get_legend() is None
    save_png(fig, tmp_path / "ecdf.png")
    assert (tmp_path / "ecdf.png").stat().st_size > 10_000
    assert ecdf_figure({}, set(), "F@1%").axes[0].texts  # an explicit "no entries" message
    assert 'alt="a &lt;b&gt;"' in figure_html(fig, "a <b>")


def test_display_formatting_and_the_heat_map_escape_and_round() -> None:
    import math

    from leaderboard import views

    frame = pd.DataFrame({"Method": ["a"], "KS D": [0.123456789012345678], "KS p": [1e-12],
                          "Wilcoxon p": [0.0123456], "Paired items": [52],
                          "Mean difference": [math.nan]})  # fmt: skip
    out = views.format_frame(frame)
    assert out.iloc[0].tolist() == ["a", "0.123", "< 0.001", "0.012", 52, "–"]
    entry = views.Entry(
        id=1, name="<img src=x onerror=alert(1)>", method="m", authors="", paper_url="",
        code_url="", representation="voxels", training_data="", baseline=False,
        verified=True, date=None, headline=0.5, iou=None, chamfer_l1=0.25, coverage=1.0,
        per_class={"chair": 0.5, "table": None},
    )  # fmt: skip
    html = views.per_class_heatmap([entry], "F@1%", ["airplane", "chair", "table"])
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert re.findall(r"<td [^>]*>([^<]*)</td>", html) == ["–", "0.500", "–", "0.500"]
    assert "No scored entries yet" in views.per_class_heatmap([], "F@1%")
    shown = views.display_frame([entry], baselines=["Clustering"])
    assert shown.iloc[0]["F@1% ↑ ± 95% CI"] == "0.500" and shown.iloc[0]["IoU ↑"] == "–"
    assert shown.iloc[0]["Verified"] == "✓" and shown.iloc[0]["Kind"] == "submission"
    assert shown.iloc[0]["vs Clustering"] == "–"


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


def test_report_figures_tell_kinds_apart(tmp_path: Path, tiny_benchmark: Path, monkeypatch) -> None:
    """`leaderboard report --figures`: recognition baselines dashed, the other seeded methods
    dotted as references, submissions solid (not every seeded entry a baseline)."""
    from board_helpers import SUBMISSION, populate
    from leaderboard_fakes import fake_open, fake_score

    import leaderboard.figures as figures
    from leaderboard.report import write_figures
    from leaderboard.seed import BASELINE_NAMES
    from leaderboard.settings import LeaderboardSettings
    from svr.data.layout import Benchmark

    seen: dict[str, tuple[set, set]] = {}
    real_ecdf, real_bars = figures.ecdf_figure, figures.per_class_figure

    def ecdf(dist, baselines, label, references=()):
        seen["ecdf"] = (set(baselines), set(references))
        return real_ecdf(dist, baselines, label, references)

    def bars(frame, label, baselines=(), references=()):
        seen["bars"] = (set(baselines), set(references))
        return real_bars(frame, label, baselines, references)

    monkeypatch.setattr(figures, "ecdf_figure", ecdf)
    monkeypatch.setattr(figures, "per_class_figure", bars)
    ids = [i.item_id for i in Benchmark(tiny_benchmark).items("test")]
    settings = LeaderboardSettings(home=tmp_path / "home", poll_interval_s=0.05)
    service = LeaderboardService(settings, tiny_benchmark, score_fn=fake_score,
                                 open_fn=fake_open)  # fmt: skip
    try:
        populate(service, ids, tmp_path)
        written = write_figures(service, tmp_path / "figures")
    finally:
        service.close()
    recognition = {BASELINE_NAMES["clustering"], BASELINE_NAMES["retrieval"]}
    references = {BASELINE_NAMES[k] for k in BASELINE_NAMES} - recognition
    assert seen["ecdf"] == seen["bars"] == (recognition, references)
    assert SUBMISSION not in seen["ecdf"][0] | seen["ecdf"][1]
    for path in written.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
