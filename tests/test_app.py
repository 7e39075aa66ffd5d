"""The real app: a Gradio server on loopback driven with gradio_client."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import trimesh
from app_helpers import launch_in_process, shared_tiny_weights, tiny_app_settings
from PIL import Image

from svr.data.layout import Benchmark
from svr.export import MESH_GREY

gradio_client = pytest.importorskip("gradio_client")

REPO_ROOT_PHOTO = Path(__file__).resolve().parents[1] / "assets" / "examples" / "photo_chair.jpg"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_benchmark):
    """(url, settings) of a running app with tiny weights, SVR_PREPARE=0."""
    import app

    weights = shared_tiny_weights(tmp_path_factory, tiny_benchmark)
    root = tmp_path_factory.mktemp("app")
    settings = tiny_app_settings(root, tiny_benchmark, weights)
    settings.home.mkdir(parents=True)
    (settings.home / "secret.txt").write_text("not for the web")
    demo = app.build_app(settings)
    yield launch_in_process(demo, settings), settings
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server[0], verbose=False)


def _val_view(bench_dir: Path) -> Path:
    bench = Benchmark(bench_dir)
    return bench.image_path(bench.items("val")[0])


def test_reconstruct_endpoint_returns_a_glb(client, tiny_benchmark):
    glb, _report = client.predict(
        gradio_client.handle_file(str(_val_view(tiny_benchmark))),
        "retrieval",
        api_name="/reconstruct",
    )
    assert Path(glb).suffix == ".glb"
    mesh = trimesh.load(glb, force="mesh", process=False)
    assert len(mesh.faces) > 0
    assert mesh.bounds.min() >= -0.5 - 1e-6 and mesh.bounds.max() <= 0.5 + 1e-6


def test_bad_files_get_clear_errors_and_the_server_keeps_serving(client, tiny_benchmark, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("definitely not a picture")
    with pytest.raises(Exception, match="not an image"):
        client.predict(gradio_client.handle_file(str(text)), "clustering", api_name="/reconstruct")
    huge = tmp_path / "huge.png"
    Image.new("1", (5000, 5000)).save(huge)
    with pytest.raises(Exception, match="megapixels"):
        client.predict(gradio_client.handle_file(str(huge)), "clustering", api_name="/reconstruct")
    flat = tmp_path / "flat.png"
    Image.new("RGB", (64, 64), (30, 60, 90)).save(flat)
    with pytest.raises(Exception, match="single colour"):
        client.predict(gradio_client.handle_file(str(flat)), "clustering", api_name="/reconstruct")
    with pytest.raises(Exception, match="no weights for occupancy yet"):
        client.predict(
            gradio_client.handle_file(str(_val_view(tiny_benchmark))),
            "occupancy",
            api_name="/reconstruct",
        )
    # still serving
    glb, _report = client.predict(
        gradio_client.handle_file(str(_val_view(tiny_benchmark))),
        "clustering",
        api_name="/reconstruct",
    )
    assert trimesh.load(glb, force="mesh").faces.shape[0] > 0


def test_a_photo_without_alpha_is_reconstructed(client, tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:160, 0:200]
    img = np.stack([120 + 60 * xx / 200, 140 + 40 * yy / 160, np.full_like(xx, 200.0)], -1)
    inside = ((xx - 100) / 50.0) ** 2 + ((yy - 80) / 35.0) ** 2 <= 1
    img[inside] = (180, 60, 40)
    img += rng.normal(0, 2, img.shape)
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=92)
    glb, _report = client.predict(
        gradio_client.handle_file(str(path)), "clustering", api_name="/reconstruct"
    )
    assert Path(glb).is_file()


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_files_outside_the_cache_are_refused(server, tiny_benchmark):
    url, settings = server
    secret = settings.home / "secret.txt"
    assert _get(f"{url}gradio_api/file={urllib.parse.quote(str(secret))}") == 403
    hidden = next((Path(tiny_benchmark) / "test").rglob("points.npy"))
    assert _get(f"{url}gradio_api/file={urllib.parse.quote(str(hidden))}") == 403
    assert _get(url) == 200


def test_named_endpoint_is_listed(client):
    api = client.view_api(return_format="dict", print_info=False)
    assert "/reconstruct" in api["named_endpoints"]
    params = [p["parameter_name"] for p in api["named_endpoints"]["/reconstruct"]["parameters"]]
    assert len(params) == 2


def test_the_app_serves_the_leaderboard_as_plain_json(server, client):
    import json
    import urllib.request

    with urllib.request.urlopen(server[0] + "api/leaderboard.json", timeout=10) as response:
        assert response.status == 200
        records = json.loads(response.read())
    assert records == client.predict(api_name="/leaderboard")


def test_the_app_serves_the_test_inputs_and_nothing_of_the_ground_truth(server, tiny_benchmark):
    import io
    import json
    import zipfile

    with urllib.request.urlopen(server[0] + "api/test-inputs.zip", timeout=30) as response:
        assert response.status == 200
        assert response.headers["content-type"] == "application/zip"
        data = response.read()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        items = json.loads(zf.read("inputs.json"))["items"]
    bench = Benchmark(tiny_benchmark)
    assert sorted(items) == sorted(it.item_id for it in bench.items("test"))
    assert all(n.endswith((".png", ".json", ".txt")) for n in names)
    assert not [n for n in names if n.startswith("views/") and not n.endswith(".png")]


# ---- what the API reports: class, camera and files, beside the GLB --------------------------


def test_reconstruct_endpoint_reports_class_camera_and_files(client, tiny_benchmark):
    from svr.classes import CLASS_NAMES

    glb, report = client.predict(
        gradio_client.handle_file(str(_val_view(tiny_benchmark))), "voxel", api_name="/reconstruct"
    )
    assert set(report) == {
        "method", "kind", "predicted_class", "class_probability", "azimuth", "elevation",
        "colored", "colored_share", "files", "error",
    }  # fmt: skip
    assert report["method"] == "voxel" and report["kind"] == "encoder-decoder"
    assert report["predicted_class"] in CLASS_NAMES and 0 <= report["class_probability"] <= 1
    assert 0 <= report["azimuth"] < 360 and -20 <= report["elevation"] <= 50  # untrained heads
    assert report["files"]["glb"] == Path(glb).name and report["error"] is None
    assert set(report["files"]) == {"glb", "obj", "ply", "stl", "npy", "binvox"}
    assert report["colored"] is True and 0 < report["colored_share"] < 1
    assert len(_colors(glb)) > 2  # coloured from the photo, as the viewer shows it


def _colors(glb: str) -> set[tuple[int, ...]]:
    """The distinct RGBA colours of a GLB's vertices."""
    mesh = trimesh.load(glb, force="mesh", process=False)
    assert len(mesh.faces) > 0
    return {tuple(int(v) for v in c) for c in np.asarray(mesh.visual.vertex_colors)}


def test_named_endpoint_returns_the_glb_and_the_report(client):
    api = client.view_api(return_format="dict", print_info=False)
    returns = api["named_endpoints"]["/reconstruct"]["returns"]
    assert [r["component"] for r in returns] == ["File", "Json"]


@pytest.fixture(scope="module")
def pinned_client(tmp_path_factory, tiny_benchmark):
    """A client of an app whose voxel heads always answer chair, azimuth 90, elevation 22.5
    and whose retrieval weights have no heads (as the shipped ones)."""
    from view_weights import pinned_weights

    import app

    weights = pinned_weights(tmp_path_factory, tiny_benchmark)
    settings = tiny_app_settings(tmp_path_factory.mktemp("pinned_app"), tiny_benchmark, weights)
    demo = app.build_app(settings)
    yield gradio_client.Client(launch_in_process(demo, settings), verbose=False)
    demo.close()


def test_the_report_carries_the_heads_answer_or_says_there_is_no_camera(
    pinned_client, tiny_benchmark
):
    from view_weights import PINNED

    image = gradio_client.handle_file(str(_val_view(tiny_benchmark)))
    glb, report = pinned_client.predict(image, "voxel", api_name="/reconstruct")
    assert {k: report[k] for k in PINNED} == PINNED
    assert report["class_probability"] == pytest.approx(1.0, abs=1e-3)
    assert report["colored"] is True
    glb, report = pinned_client.predict(image, "retrieval", api_name="/reconstruct")
    assert report["azimuth"] is None and report["elevation"] is None  # weights without heads
    assert report["predicted_class"] is not None  # retrieval reports its answer's class
    assert report["colored"] is False and report["colored_share"] is None
    assert _colors(glb) == {MESH_GREY}  # grey: no camera to project the photo with


def test_compare_all_lists_class_and_camera_for_every_method(pinned_client, tiny_benchmark):
    image = gradio_client.handle_file(str(_val_view(tiny_benchmark)))
    table, *views = pinned_client.predict(image, 0.67, True, api_name="/compare_all")
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.count("|") > 5}
    assert "class (p)" in rows["method"] and "camera (az, el)" in rows["method"]
    assert "| chair (p = 1.00) | 90°, 22° |" in rows["voxel"]
    assert "| none |" in rows["retrieval"]  # no camera heads
    assert "| none |" not in rows["clustering"]  # its (untrained) heads give a camera
    assert "no weights yet" in rows["occupancy"]
    # each view opens from its method's camera: gr.Model3D(camera_position=(alpha, beta,
    # radius)), alpha = 90 - azimuth, beta = 90 - elevation (svr.viewpoint)
    names = ["clustering", "retrieval", "voxel", "occupancy", "atlas"]
    by_method = dict(zip(names, views, strict=True))
    assert by_method["voxel"]["camera_position"] == [0.0, 67.5, 2.1]
    assert by_method["retrieval"]["camera_position"] == [90.0, 75.0, None]  # viewer's default
    assert all(by_method[m]["value"].endswith(".glb") for m in ("clustering", "retrieval", "voxel"))
    assert by_method["occupancy"]["value"] is None


def test_the_demo_opens_its_viewers_from_the_estimated_camera(pinned_client, tiny_benchmark):
    image = gradio_client.handle_file(str(_val_view(tiny_benchmark)))
    out = pinned_client.predict(image, "voxel", 0.67, True, api_name="/reconstruct_ui")
    viewer, stats = out[2], out[4]
    assert viewer["camera_position"] == [0.0, 67.5, 2.1] and viewer["value"].endswith(".glb")
    assert "azimuth 90°, elevation 22°" in stats and "coloured from the photo" in stats
    out = pinned_client.predict(image, "retrieval", 0.67, True, api_name="/reconstruct_ui")
    assert out[2]["camera_position"] == [90.0, 75.0, None]
    assert "default front view" in out[4] and "no camera estimate" in out[4]


# ---- the Reconstruct tab's outputs, the About text, the console ----------------------------


def test_a_result_hides_the_placeholder_hint(pinned_client, tiny_benchmark):
    """The hint stands where the outputs go until there is a result (the output column and
    the ground-truth panel are layout blocks, which gradio_client does not return: the
    browser test checks them)."""
    image = gradio_client.handle_file(str(_val_view(tiny_benchmark)))
    out = pinned_client.predict(image, "voxel", 0.67, True, api_name="/reconstruct_ui")
    assert out[-1] == {"visible": False, "__type__": "update"}
    assert out[2]["value"].endswith(".glb")


def test_example_captions_say_what_each_example_is():
    from svr.presentation import example_caption, examples_heading

    assert example_caption("val", "val: chair") == "chair · validation (scored)"
    assert example_caption("test", "test: car (test: no ground truth shown)") == "car · test view"
    assert example_caption(None, "photo-like lamp (no alpha)") == "lamp · photo"
    assert example_caption(None, "something else") == "photo"
    heading = examples_heading(["val", "val", "test", None])
    assert "2 benchmark validation views" in heading and "1 test views" in heading
    assert "1 photo-like images" in heading


def test_the_about_text_has_no_line_markdown_would_read_as_a_quote_or_heading():
    from svr.presentation import ABOUT

    for line in ABOUT.splitlines():
        stripped = line.lstrip()
        assert not stripped.startswith(">"), line  # a blockquote
        assert not re.match(r"#{1,6}[^# ]", stripped), line
    assert "\\>= 0.5; or .binvox" in ABOUT  # escaped: shown as ">= 0.5"


def test_the_console_says_what_it_loads_and_refuses_user_errors_in_one_line(
    tmp_path, tiny_benchmark
):
    from app_helpers import start_app, stop_app

    log = tmp_path / "app.log"
    proc, url = start_app(tmp_path / "home", tiny_benchmark, log)
    try:
        text_file = tmp_path / "notes.png"
        text_file.write_text("not a picture")
        client = gradio_client.Client(url, verbose=False)
        with pytest.raises(Exception, match="not an image"):
            client.predict(
                gradio_client.handle_file(str(text_file)), "clustering", api_name="/reconstruct"
            )
        with pytest.raises(Exception, match="no image given"):
            client.predict(None, "clustering", api_name="/reconstruct")
        bad_archive = tmp_path / "predictions.zip"
        bad_archive.write_text("not an archive")
        with pytest.raises(Exception, match="archive"):  # the Submit tab: a user error too
            client.predict(
                gradio_client.handle_file(str(bad_archive)), "{}", "alice", api_name="/submit"
            )
        deadline = time.time() + 20
        while time.time() < deadline and log.read_text().count("refused:") < 3:
            time.sleep(0.2)
    finally:
        stop_app(proc)
    lines = log.read_text().splitlines()
    assert "starting: loading gradio, torch and the reconstruction code" in lines[0]
    assert any("interface built in" in line for line in lines)
    assert any(re.search(r"serving at \S+ after [\d.]+ s", line) for line in lines)
    text = "\n".join(lines)
    assert "setup plugin" not in text and "alembic" not in text
    assert "Traceback" not in text
    refused = [line for line in lines if "refused:" in line]
    assert len(refused) == 3 and "not an image" in refused[0] and "no image given" in refused[1]


def test_the_page_names_no_server_folder_for_missing_weights(pinned_client, tmp_path):
    """The methods list and the refusal for a method without weights name no folder."""
    from svr.presentation import methods_markdown
    from svr.store import ModelStore

    text = methods_markdown(ModelStore(tmp_path / "no-weights").methods())
    assert "No weights for occupancy yet" in text and str(tmp_path) not in text
    assert not re.search(r"/\w", text)
    with pytest.raises(Exception, match="no weights for occupancy yet") as refused:
        pinned_client.predict(
            gradio_client.handle_file(str(REPO_ROOT_PHOTO)), "occupancy", api_name="/reconstruct"
        )
    assert not re.search(r"/\w", str(refused.value)), refused.value
