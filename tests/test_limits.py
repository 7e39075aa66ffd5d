"""Bounded resources: every upload within the limits costs bounded memory and disk.

Unit tests of the streaming checks (`leaderboard.meshcheck`, `leaderboard.glbcheck`,
`leaderboard.textmesh`) against naive references and trimesh, and of the scratch folders
(`leaderboard.scratch`); then the attacks that went through the real server, through the real
server (`python app.py`): hostile mesh items, a .tar.gz that fills the scratch disk, a SIGKILL
during validation, inline `data:` images and oversized bodies, and the upload folder.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import trimesh
from app_helpers import start_app, stop_app
from hostile_uploads import (
    data_url_png,
    glb_bytes,
    grid_mesh,
    hostile_uploads,
    tgz_scratch_bomb,
)

from leaderboard.glbcheck import check_glb
from leaderboard.items import decode_item
from leaderboard.meshcheck import check_obj, iter_lines
from leaderboard.scratch import clean_scratch, make_scratch_dir, owner_alive
from leaderboard.validation import ItemError, ItemLimits

SMALL = ItemLimits(max_faces=100, max_vertices=1000, max_points=50)


# ----------------------------------------------------------------------------- text lines


def _naive_lines(data: bytes, start: int = 0) -> list[tuple[int, int, int, int]]:
    """(start, end, tokens, first token offset) per line, by a plain Python loop."""
    out = []
    pos = start
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        tokens, first, inside = 0, -1, False
        for k in range(pos, end):
            sep = data[k] <= 0x20 or data[k] >= 0x7F
            if not sep and not inside:
                tokens += 1
                first = k if first < 0 else first
            inside = not sep
        out.append((pos, end, tokens, first))
        pos = end + 1
    return out


@pytest.mark.parametrize("window", [1, 3, 7, 64, 1 << 20])
def test_iter_lines_matches_a_naive_loop(window: int) -> None:
    rng = np.random.default_rng(0)
    alphabet = np.frombuffer(b"ab1 \t\n\r#\xc3\xa9v f", np.uint8)
    data = rng.choice(alphabet, 3000).tobytes() + b"tail without newline"
    got = []
    for starts, ends, tokens, first in iter_lines(data, 5, window=window):
        got += list(zip(*(a.tolist() for a in (starts, ends, tokens, first)), strict=True))
    assert got == _naive_lines(data, 5)


# ----------------------------------------------------------------------------- OBJ


def test_obj_triangles_are_counted_by_polygon_corners() -> None:
    text = (
        b"# a comment f 1 2 3 4 5\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0 0 1\nvn 0 0 1\n"
        b"f 1 2 3\nf 1/1 2/2 3/3 4/4\r\nf\t1 2 3 4 5\no part\ng g1\ns 1\nusemtl m\n"
    )
    counts = check_obj(text, ItemLimits())
    assert (counts.vertices, counts.triangles, counts.groups) == (5, 1 + 2 + 3, 4)
    assert counts.vertex_numbers == 15 and counts.attribute_numbers == 3
    mesh = trimesh.load(io.BytesIO(text), file_type="obj", process=False)
    assert len(mesh.faces) <= counts.triangles  # an upper bound of what trimesh builds


def test_obj_one_polygon_over_the_limit_is_refused_before_parsing() -> None:
    data = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf " + b"1 2 3 " * 34 + b"\n"  # 102 corners: 100 tris
    assert check_obj(data, SMALL).triangles == 100
    with pytest.raises(ItemError, match="n-2 triangles"):
        check_obj(data + b"f 1 2 3\n", SMALL)
    with pytest.raises(ItemError, match="backslash"):
        check_obj(b"v 0 0 0\nf 1 2 \\\n 3 4\n", SMALL)


def test_obj_precheck_memory_stays_bounded_on_ten_million_face_lines() -> None:
    data = b"v 0 0 0\nv 1 0 0\nv 0 1 0\n" + b"f 1 2 3\n" * 10_000_000  # 80 MB
    tracemalloc.start()
    try:
        with pytest.raises(ItemError, match="more than 500,000 faces"):
            check_obj(data, ItemLimits())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40e6, f"the streaming count allocated {peak / 1e6:.0f} MB"


def test_obj_text_items_are_capped_in_bytes() -> None:
    data = b"v 0 0 0\n" + b"# padding\n" * 7_000_000
    with pytest.raises(ItemError, match="at most 64 MB"):
        decode_item(data, "obj")


# ----------------------------------------------------------------------------- GLB


def test_glb_checks_accept_a_real_export_and_count_instances() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    assert check_glb(mesh.export(file_type="glb"), ItemLimits()) == (162, 320)
    vertices, faces = grid_mesh(11)
    assert check_glb(glb_bytes(vertices, faces, nodes=3), ItemLimits()) == (363, 600)
    with pytest.raises(ItemError, match="counted over every placement"):
        check_glb(glb_bytes(vertices, faces, nodes=3), ItemLimits(max_faces=500))


def _glb_with(edit) -> bytes:
    """A valid GLB whose JSON is changed by `edit(doc)`."""
    vertices, faces = grid_mesh(5)
    data = glb_bytes(vertices, faces)
    json_len = int.from_bytes(data[12:16], "little")
    doc = json.loads(data[20 : 20 + json_len])
    edit(doc)
    raw = json.dumps(doc).encode()
    raw += b" " * (-len(raw) % 4)
    rest = data[20 + json_len :]
    head = b"glTF" + (2).to_bytes(4, "little") + (20 + len(raw) + len(rest)).to_bytes(4, "little")
    return head + len(raw).to_bytes(4, "little") + b"JSON" + raw + rest


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda d: d["accessors"][1].update(count=10**9), "inconsistent"),
        (lambda d: d["bufferViews"][1].update(byteLength=10**9), "past the end"),
        (lambda d: d["buffers"][0].update(uri="https://example.org/x.bin"), "URI"),
        (lambda d: d["accessors"][0].pop("bufferView"), "no bufferView"),
        (lambda d: d.update(extensionsRequired=["KHR_draco_mesh_compression"]), "Draco"),
        (lambda d: d["nodes"][0].update(children=[0]), "more than one parent"),
        (lambda d: d["accessors"][1].update(componentType=5124), "componentType"),
        (lambda d: d.update(extras="x" * (2 << 20)), "JSON chunk"),
    ],
)
def test_glb_with_inconsistent_structure_is_refused(edit, fragment: str) -> None:
    with pytest.raises(ItemError, match=fragment):
        check_glb(_glb_with(edit), ItemLimits())


# ----------------------------------------------------------------------------- PLY, OFF


def _mesh() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=3, radius=0.4)


@pytest.mark.parametrize("fmt", ["ascii", "off"])
def test_bounded_text_readers_give_trimesh_arrays(fmt: str) -> None:
    mesh = _mesh()
    if fmt == "ascii":
        data, ext = trimesh.exchange.ply.export_ply(mesh, encoding="ascii"), "ply"
    else:
        data, ext = mesh.export(file_type="off").encode(), "off"
    item = decode_item(data, ext)
    reference = trimesh.load(io.BytesIO(data), file_type=ext, process=False)
    np.testing.assert_allclose(item.vertices, reference.vertices, atol=1e-7)
    np.testing.assert_array_equal(item.faces, reference.faces)


def test_off_polygons_fan_into_triangles_and_lying_headers_are_refused() -> None:
    quad = b"OFF\n# a square\n4 1 0\n0 0 0\n0.1 0 0\n0.1 0.1 0\n0 0.1 0\n4 0 1 2 3\n"
    np.testing.assert_array_equal(decode_item(quad, "off").faces, [[0, 1, 2], [0, 2, 3]])
    with pytest.raises(ItemError, match="more rows follow"):
        decode_item(quad + b"3 0 1 2\n", "off")
    with pytest.raises(ItemError, match="declares 2 faces, found 1"):
        decode_item(quad.replace(b"4 1 0", b"4 2 0"), "off")
    with pytest.raises(ItemError, match="600,000 faces"):
        decode_item(quad.replace(b"4 1 0", b"4 600000 0"), "off")


def test_ply_face_lists_are_bounded_by_the_data_present() -> None:
    head = (
        b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n"
        b"property float y\nproperty float z\nelement face 1\n"
        b"property list int int vertex_indices\nend_header\n"
    )
    body = np.zeros(9, "<f4").tobytes() + np.array([1_000_000], "<i4").tobytes()
    with pytest.raises(ItemError, match="face lists can hold 1,000,000 corners"):
        decode_item(head + body + np.zeros(1_000_000, "<i4").tobytes(), "ply")
    with pytest.raises(ItemError, match="truncated .ply"):
        decode_item(head.replace(b"face 1", b"face 400000"), "ply")


def test_xyz_rows_are_counted_before_parsing() -> None:
    item = decode_item(b"# x y z\n0,0,0\n0.1 0.2 0.3 1 1 1\n\n", "xyz")
    np.testing.assert_allclose(item.points, [[0, 0, 0], [0.1, 0.2, 0.3]])
    with pytest.raises(ItemError, match="100,001 points"):
        decode_item(b"0 0 0\n" * 100_001, "xyz")


# ----------------------------------------------------------------------------- scratch


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_clean_scratch_removes_only_what_no_live_process_owns(tmp_path: Path) -> None:
    root = tmp_path / "scratch"
    mine = make_scratch_dir(root)
    (mine / "archive.tar").write_bytes(b"x" * 1000)
    assert owner_alive(mine.name) is True
    dead = root / f"submission-{_dead_pid()}.12345-abc"
    dead.mkdir()
    (dead / "archive.tar").write_bytes(b"y" * 5000)
    reused = root / f"submission-{os.getpid()}.1-abc"  # our PID, another start time
    reused.mkdir()
    old, young = root / "submission-old", root / "tmp-young"
    for folder in (old, young):
        folder.mkdir()
        (folder / "f").write_bytes(b"z" * 10)
    os.utime(old / "f", (time.time() - 7200,) * 2)
    os.utime(old, (time.time() - 7200,) * 2)
    result = clean_scratch(root)
    assert sorted(p.name for p in root.iterdir()) == sorted([mine.name, old.name, young.name])
    assert result.removed == 2 and result.bytes == 5000
    clean_scratch(root, unowned_after_s=3600)
    assert sorted(p.name for p in root.iterdir()) == sorted([mine.name, young.name])


# ----------------------------------------------------------------------------- the real server


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _submit(client, path: Path, who: str) -> tuple[str, object]:
    """("accepted", submission id) or (the refusal on one line, None)."""
    from gradio_client import handle_file

    try:
        return "accepted", client.predict(handle_file(str(path)), "{}", who, api_name="/submit")
    except Exception as exc:  # noqa: BLE001 - the refusal is the result
        return " ".join(str(exc).split()), None


def _wait_done(client, sid: object, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.predict(sid, api_name="/submission_status")
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.5)
    raise AssertionError(f"submission {sid} did not finish")


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_hostile_uploads_through_the_server_are_refused_in_bounded_memory(
    tmp_path: Path, tiny_benchmark: Path
) -> None:
    from gradio_client import Client

    from leaderboard.archive import write_template
    from svr.data.layout import Benchmark

    first = Benchmark(tiny_benchmark).items("test")[0].item_id
    uploads = hostile_uploads(tmp_path / "uploads", first)
    template = tmp_path / "template.zip"
    write_template(Benchmark(tiny_benchmark), template, "mesh")
    home = tmp_path / "home"
    proc, base = start_app(home, tiny_benchmark, tmp_path / "app.log")
    try:
        client = Client(base, verbose=False, httpx_kwargs={"timeout": 300})
        warm, sid = _submit(client, template, "warm-up")  # imports trimesh & co. once
        assert warm == "accepted", warm
        _wait_done(client, sid)
        for k, upload in enumerate(uploads):
            time.sleep(0.3)
            before = _rss_mb(proc.pid)
            _reset_peak(proc.pid)
            outcome, _ = _submit(client, upload.path, f"mallory{k}")
            growth = _rss_mb(proc.pid, "VmHWM") - before
            assert "rejected" in outcome and upload.fragment in outcome, (upload.name, outcome)
            assert str(home) not in outcome
            assert growth < 300, f"{upload.name}: RSS grew by {growth:.0f} MB"
            assert not _files(home / "scratch"), f"{upload.name} left files in scratch"
            kept = [f for f in _files(home / "uploads") if f.name == upload.path.name]
            assert not kept, f"{upload.name}: the uploaded archive was kept"
            assert proc.poll() is None
        (home / "late.txt").write_text("created after launch")
        for secret in [home / "svr.db", home / "late.txt", *_files(home / "archives")]:
            url = f"{base}gradio_api/file={urllib.parse.quote(str(secret))}"
            assert _get(url) == 403, secret.name  # nothing of SVR_HOME but uploads is served
    finally:
        stop_app(proc)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_during_validation_leaves_scratch_that_the_restart_removes(
    tmp_path: Path, tiny_benchmark: Path
) -> None:
    from gradio_client import Client

    bomb = tgz_scratch_bomb(tmp_path, unpacked=900 << 20)  # under the 1 GiB budget
    home = tmp_path / "home"
    proc, base = start_app(home, tiny_benchmark, tmp_path / "app.log")
    try:
        client = Client(base, verbose=False, httpx_kwargs={"timeout": 300})
        thread = threading.Thread(target=_submit, args=(client, bomb.path, "mallory"), daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while sum(p.stat().st_size for p in _files(home / "scratch")) < 50 << 20:
            assert time.monotonic() < deadline, "validation never wrote to scratch"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        stop_app(proc)
    assert _files(home / "scratch"), "nothing was left behind: the test killed too late"
    proc, base = start_app(home, tiny_benchmark, tmp_path / "app.log")
    try:
        assert not _files(home / "scratch"), "scratch not cleaned at start"
    finally:
        stop_app(proc)


def _post(url: str, body: bytes, content_type: str) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _reconstruct_inline(base: str, url: str) -> str:
    body = json.dumps({"data": [{"url": url, "path": None}, "retrieval"]}).encode()
    status, text = _post(base + "gradio_api/call/reconstruct", body, "application/json")
    assert status == 200, text
    event = json.loads(text)["event_id"]
    with urllib.request.urlopen(f"{base}gradio_api/call/reconstruct/{event}", timeout=120) as r:
        return r.read().decode()


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = "svrboundary7"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_inline_images_bodies_and_the_upload_folder_are_bounded(
    tmp_path: Path, tiny_benchmark: Path
) -> None:
    from PIL import Image

    home = tmp_path / "home"
    stale = home / "uploads" / ("0" * 40) / "old.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    os.utime(stale, (time.time() - 7200,) * 2)
    proc, base = start_app(home, tiny_benchmark, tmp_path / "app.log", SVR_MAX_UPLOAD_MB="3",
                           SVR_UPLOADS_MB="8", SVR_MAX_BODY_MB="2", SVR_SCRATCH_MB="16")  # fmt: skip
    try:
        assert not stale.exists(), "a stale upload survived the start"
        from gradio_client import Client

        client = Client(base, verbose=False, httpx_kwargs={"timeout": 120})
        bomb = tgz_scratch_bomb(tmp_path, unpacked=24 << 20)
        outcome, _ = _submit(client, bomb.path, "mallory")
        assert "cannot be unpacked" in outcome and "more than 16 MB" in outcome, outcome
        assert not _files(home / "scratch")
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (200, 200, 200)).save(buf, "PNG")
        honest = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
        assert "single colour" in _reconstruct_inline(base, honest)  # reached the app's checks
        before = _rss_mb(proc.pid)
        _reset_peak(proc.pid)
        start = time.monotonic()
        answer = _reconstruct_inline(base, data_url_png())  # 81 megapixels
        assert "81.0 megapixels" in answer and "limit is 20 megapixels" in answer, answer
        assert time.monotonic() - start < 5
        assert _rss_mb(proc.pid, "VmHWM") - before < 100
        body = json.dumps({"data": ["A" * (3 << 20), "retrieval"]}).encode()
        status, text = _post(base + "gradio_api/call/reconstruct", body, "application/json")
        assert status == 413 and "at most 2 MB" in text and "handle_file" in text, text
        upload = base + "gradio_api/upload"
        status, text = _post(upload, *_multipart("big.bin", os.urandom(4 << 20)))
        assert status == 413 and "at most 3 MB per upload" in text, text
        codes = [_post(upload, *_multipart(f"f{k}.bin", os.urandom(2 << 20)))[0] for k in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[-1] == 507, codes
        kept = _files(home / "uploads")
        assert kept and sum(p.stat().st_size for p in kept) <= 8 << 20
        assert _get(f"{base}gradio_api/file={urllib.parse.quote(str(kept[0]))}") == 200
        assert proc.poll() is None
    finally:
        stop_app(proc)
