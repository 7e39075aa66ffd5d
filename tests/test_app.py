"""The real app: a Gradio server on loopback driven with gradio_client."""

from __future__ import annotations

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

gradio_client = pytest.importorskip("gradio_client")


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
    glb = client.predict(
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
    glb = client.predict(
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
    glb = client.predict(
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
