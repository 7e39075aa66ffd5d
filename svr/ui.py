"""The Reconstruct and About tabs (the only `svr` module that imports gradio).

Handlers stay short: parse the inputs, call `svr.inference`, format the result, turn
known errors into `gr.Error`. The named API endpoint `/reconstruct` takes
(image file, method name) and returns (the GLB, its report: `svr.report.MethodReport`
as a dict, with the predicted class, its probability and the camera estimate).

Nothing but a short hint fills the output column until there is a result; the ground truth
panel shows only for a benchmark validation example, the compare views only after a compare
run. The status panel on top (`svr.status`) shows the first-start preparation and the
baselines' scoring while they run. Errors a user can fix are shown in the page and logged
as one line, without a traceback.

The viewer opens from the photo's viewpoint: the method's estimated azimuth and elevation
become gr.Model3D's `camera_position` (`svr.viewpoint.viewer_camera`; the viewer's default
view without an estimate), while the mesh and every download stay in the object frame.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field

import gradio as gr
from PIL import UnidentifiedImageError

from svr.examples import Example, benchmark_examples, make_photo_examples
from svr.inference import (
    ModelStore,
    ModelUnavailable,
    Reconstruction,
    ReconstructionError,
    Reconstructor,
    SessionFiles,
    compare_with_ground_truth,
    file_sha256,
    ground_truth_scores,
    recognise,
)
from svr.prepare import Preparation, benchmark_ready
from svr.preprocess import (
    DEFAULT_FOREGROUND_RATIO,
    ImageInputError,
    image_from_data_url,
    image_size,
)
from svr.presentation import (
    ABOUT,
    ABOUT_FIGURES,
    CSS,
    HIDDEN,
    NO_GROUND_TRUTH,
    NO_RESULT,
    after_models_load,
    compare_failed_row,
    compare_head,
    compare_note,
    compare_row,
    example_caption,
    examples_heading,
    ground_truth_markdown,
    methods_markdown,
    recognition_markdown,
    stats_markdown,
    thumbnail,
)
from svr.report import MethodReport
from svr.settings import REPO_ROOT, Settings
from svr.status import StatusSource, panel_html, public_text
from svr.viewpoint import viewer_camera

__all__ = [
    "CSS",
    "DemoContext",
    "image_file_input",
    "add_reconstruct_tab",
    "add_about_tab",
    "make_context",
    "session_cleanup",
]

logger = logging.getLogger(__name__)

_USER_ERRORS = (ImageInputError, ModelUnavailable, ReconstructionError, ValueError)
COMMITTED_EXAMPLES = REPO_ROOT / "assets" / "examples"
CONTACT_SHEET = REPO_ROOT / "assets" / "contact_sheet.png"
SEED_DISTRIBUTIONS = REPO_ROOT / "assets" / "leaderboard" / "distributions.png"


def image_file_input(max_inline_bytes: int = 16 << 20, **kwargs) -> gr.Image:
    """A gr.Image (type "filepath", no mode conversion) that never decodes an image itself.

    The app validates and decodes files itself (`svr.preprocess.load_image`). Before
    Gradio's own preprocessing runs, the image's header is checked (`image_size`: a file
    over the pixel limit is refused before anything is decoded), and an image sent inline
    as a `data:` URL (API calls), which Gradio would decode and re-encode in full, is
    written to the upload folder as it came (at most `max_inline_bytes`) after the same
    header check. Errors become a `gr.Error` naming the file, never a server path. (The
    instance's `preprocess` is wrapped rather than the class subclassed: Gradio writes a
    .pyi stub next to any module defining a component subclass.)
    """
    component = gr.Image(type="filepath", image_mode=None, **kwargs)
    original = component.preprocess

    def preprocess(payload):
        name = getattr(payload, "orig_name", None) or "the image"
        url = getattr(payload, "url", None) or ""
        try:
            if url.startswith("data:"):
                return str(image_from_data_url(url, component.GRADIO_CACHE, max_inline_bytes))
            path = getattr(payload, "path", None)
            if path:
                image_size(path, name)
        except ImageInputError as exc:
            raise _error(exc) from None
        try:
            return original(payload)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise _error(
                f"{name} is not an image the app can read ({type(exc).__name__}); "
                "upload a PNG, JPEG, WebP, GIF or BMP file"
            ) from None

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


@dataclass
class DemoContext:
    """What the tabs share: settings, the reconstruction service, examples, preparation."""

    settings: Settings
    reconstructor: Reconstructor
    preparation: Preparation | None = None
    status: StatusSource | None = None
    _examples: list[Example] = field(default_factory=list)
    _benchmark_examples_done: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def examples(self) -> list[Example]:
        """Photo-like examples plus benchmark views once the benchmark exists (made once)."""
        with self._lock:
            if not self._examples:
                # served files must come from the temp dir: copy the committed ones there
                folder = self.settings.examples_dir / "photos"
                folder.mkdir(parents=True, exist_ok=True)
                for src in COMMITTED_EXAMPLES.glob("photo_*.jpg"):
                    if not (folder / src.name).is_file():
                        shutil.copyfile(src, folder / src.name)
                try:
                    self._examples = make_photo_examples(folder)
                except Exception:  # noqa: BLE001 - examples are optional; log and go on
                    logger.exception("could not make the photo-like examples")
            if not self._benchmark_examples_done and benchmark_ready(self.settings.benchmark_dir):
                try:
                    bench = benchmark_examples(
                        self.settings.benchmark_dir, self.settings.examples_dir
                    )
                except Exception:  # noqa: BLE001
                    logger.exception("could not copy benchmark examples")
                    bench = []
                for ex in bench:
                    if ex.item_id is not None:
                        self.reconstructor.known_items[file_sha256(ex.path)] = ex.item_id
                self._examples = bench + self._examples
                self._benchmark_examples_done = True
            return list(self._examples)

    def status_html(self) -> str:
        """The status panel (`svr.status.panel_html`); empty when there is no status."""
        return "" if self.status is None else panel_html(self.status.panel())

    def busy(self) -> bool:
        """True while preparation or the baselines' scoring still runs (poll again)."""
        return self.status is not None and self.status.panel().busy


def make_context(
    settings: Settings, preparation: Preparation | None = None, status: StatusSource | None = None
) -> DemoContext:
    """Build the shared services (cheap: models load on first use); `status` defaults to
    the preparation's own panel (no leaderboard)."""
    settings.temp_root.mkdir(parents=True, exist_ok=True)
    reconstructor = Reconstructor(
        store=ModelStore(settings.models_dir),
        sessions=SessionFiles(settings.temp_root),
    )
    if status is None:
        status = StatusSource(
            preparation, benchmark_ready=lambda: benchmark_ready(settings.benchmark_dir)
        )
    return DemoContext(settings, reconstructor, preparation, status)


def session_cleanup(ctx: DemoContext):
    """The Blocks' unload handler: delete the session's output files."""

    def cleanup(request: gr.Request) -> None:
        ctx.reconstructor.sessions.cleanup(getattr(request, "session_hash", None))

    return cleanup


# ---------------------------------------------------------------- formatting (no logic here)


def _error(exc: Exception | str) -> gr.Error:
    """A user's error for the page (no server path), logged as one line (Gradio prints no
    traceback)."""
    logger.info("refused: %s", exc)
    return gr.Error(public_text(str(exc)), print_exception=False)


def _camera_again(camera: tuple[float, float, float | None]) -> gr.Model3D:
    """A Model3D update that re-sends `camera`, nudged by 0.001 degree so that it differs
    from the value sent with the model (the viewer only acts on a change)."""
    alpha, beta, radius = camera
    return gr.Model3D(camera_position=(round(alpha + 0.001, 4), beta, radius))


# ---------------------------------------------------------------- tabs


def add_reconstruct_tab(ctx: DemoContext) -> None:
    """The Reconstruct tab; call inside an open `gr.Tabs()`."""
    methods = ctx.reconstructor.store.methods()
    choices = [(m.label, m.name) for m in methods]
    default = ctx.reconstructor.store.default_method(methods)  # svr.store.DEFAULT_METHOD
    kinds = {m.name: m.kind for m in methods}
    with gr.Tab("Reconstruct"):
        status = gr.HTML(ctx.status_html, elem_id="prep-status")  # evaluated per page load
        with gr.Row():
            with gr.Column(scale=1):
                image = image_file_input(
                    max_inline_bytes=ctx.settings.max_body_mb << 20,
                    label="Input image (upload, paste or webcam)",
                    sources=["upload", "clipboard", "webcam"],
                    format="png",
                    height=300,
                    elem_id="input-image",
                )
                ratio = gr.Slider(
                    0.5,
                    1.0,
                    value=DEFAULT_FOREGROUND_RATIO,
                    step=0.01,
                    label="Foreground ratio",
                    info="share of the input side spanned by the object's longest side (benchmark views: 0.5-0.8, median 0.67)",
                )
                method = gr.Dropdown(
                    choices=choices, value=default, label="Method", elem_id="method"
                )
                color = gr.Checkbox(
                    value=True,
                    label="Colour the shape from the photo",
                    info="the photo's colours on the side its estimated camera saw, grey "
                    "elsewhere; the GLB, OBJ and PLY downloads carry the same colours",
                    elem_id="color",
                )
                gr.Markdown(methods_markdown(methods))
                with gr.Row():
                    run = gr.Button("Reconstruct", variant="primary", elem_id="run")
                    run_all = gr.Button("Compare all methods", elem_id="run-all")
            with gr.Column(scale=2):
                hint = gr.Markdown(NO_RESULT, elem_id="no-result")
                with gr.Column(elem_id="result", elem_classes=[HIDDEN]) as result_box:
                    with gr.Row():
                        before = gr.Image(label="Before: your image", interactive=False, height=220)
                        after = gr.Image(
                            label="After: masked, centred input (checkerboard = transparent)",
                            interactive=False,
                            height=220,
                        )
                    viewer = gr.Model3D(
                        label="Reconstruction, seen from the photo's estimated viewpoint (drag to rotate)",
                        height=380,
                        elem_id="viewer",
                        clear_color=(0.96, 0.96, 0.96, 1.0),
                    )
                    stats = gr.Markdown(elem_id="stats")
                    downloads = gr.File(
                        label="Downloads: GLB, OBJ, PLY (coloured as shown), STL, occupancy "
                        ".npy and .binvox",
                        file_count="multiple",
                        interactive=False,
                    )
                    with gr.Accordion("What did it recognise?", open=True):
                        recognised = gr.Markdown(elem_id="recognised")
                        recognised_gallery = gr.Gallery(
                            label="Nearest training shapes and cluster mean shape",
                            columns=4,
                            height=220,
                            interactive=False,
                        )
                    with gr.Accordion(
                        "Ground truth (benchmark validation example)",
                        open=True,
                        elem_id="gt-box",
                        elem_classes=[HIDDEN],
                    ) as gt_box:
                        gt_text = gr.Markdown(NO_GROUND_TRUTH)
                        gt_view = gr.Model3D(
                            label="Ground truth (same object frame, seen from the same viewpoint)",
                            height=300,
                            elem_id="gt-viewer",
                        )
                        gt_plot = gr.Image(show_label=False, interactive=False)
                examples_box = gr.Column()  # under the result: beside the input before one
        with gr.Accordion("Compare all methods", open=True):
            compare_text = gr.Markdown(
                "Click *Compare all methods* to run every method on the input.",
                elem_id="compare-table",
            )
            with gr.Row(elem_id="compare-views"):
                compare_views = [
                    gr.Model3D(
                        label=m.name,
                        height=260,
                        elem_id=f"compare-{m.name}",
                        elem_classes=[HIDDEN],
                    )
                    for m in methods
                ]
        last = gr.State(None)
        compare_cameras = gr.State([])  # viewer camera per compare view (None: empty view)
        api_glb = gr.File(visible=False)
        api_report = gr.JSON(visible=False)
        api_button = gr.Button(visible=False)
        # every component must be created inside the Tab: one made directly in the
        # enclosing gr.Tabs() scrambles the tab labels in the browser
        ready = gr.State(benchmark_ready(ctx.settings.benchmark_dir))
        # poll while preparation or scoring may run (preparation starts after the UI is
        # built); stops when nothing runs
        timer = gr.Timer(1.0, active=ctx.busy() or ctx.preparation is not None)

    def do_reconstruct(path, name, fg_ratio, colored, request: gr.Request):
        if not path:
            raise _error("Upload, paste or capture an image first, or click an example.")
        if not name:
            raise _error("Choose a method.")
        session = request.session_hash if request is not None else None
        try:
            rec = ctx.reconstructor.run(path, name, fg_ratio, session=session, color=colored)
            prepared = rec.input
            gt = None
            if rec.item_id is not None:
                gt = compare_with_ground_truth(
                    ctx.settings.benchmark_dir, rec.item_id, rec, rec.files.glb.parent
                )
        except _USER_ERRORS as exc:
            raise _error(exc) from None
        if gt is None:
            gt_md, gt_glb, gt_png = NO_GROUND_TRUTH, None, None
        else:
            gt_md = ground_truth_markdown(gt)
            gt_glb, gt_png = str(gt.gt_glb), str(gt.figure)
        camera = viewer_camera(rec.estimate)
        return (
            thumbnail(prepared.original),
            thumbnail(prepared.image),
            gr.Model3D(value=str(rec.files.glb), camera_position=camera),
            [str(p) for p in rec.files.downloads()],
            stats_markdown(rec),
            recognition_markdown(rec) + "\n\n*Asking the recognition baselines...*",
            gt_md,
            gr.Model3D(value=gt_glb, camera_position=camera),
            gt_png,
            rec,
            gr.Column(elem_classes=[]),
            gr.Markdown(visible=False),
            gr.Accordion(elem_classes=[] if gt is not None else [HIDDEN]),
        )

    def do_recognise(rec: Reconstruction | None):
        if rec is None:
            return gr.skip(), gr.skip()
        try:
            shapes = recognise(ctx.reconstructor.store, rec)
        except Exception as exc:  # noqa: BLE001 - an explanation panel must not break the result
            logger.exception("recognition failed")
            return recognition_markdown(rec) + f"\n\nThe recognition baselines failed: {exc}", []
        lines = [recognition_markdown(rec), ""]
        if not shapes:
            lines.append(
                "No recognition baseline has weights yet, so there is nothing to compare with."
            )
        for sh in shapes:
            lines.append(
                f"- {sh.note}: `{sh.key}`; F@1% between the output and it: **{sh.fscore:.3f}**"
            )
        gallery = [(sh.render, f"{sh.key} (F@1% {sh.fscore:.2f})") for sh in shapes]
        return "\n".join(lines), gallery

    def camera_again(rec: Reconstruction | None):
        """The viewers' camera again, after the viewer's own opening animation."""
        if rec is None:
            return gr.skip(), gr.skip()
        update = _camera_again(viewer_camera(rec.estimate))
        return update, (update if rec.item_id is not None else gr.skip())

    outputs = [
        before,
        after,
        viewer,
        downloads,
        stats,
        recognised,
        gt_text,
        gt_view,
        gt_plot,
        last,
        result_box,
        hint,
        gt_box,
    ]
    reconstructed = run.click(
        do_reconstruct,
        inputs=[image, method, ratio, color],
        outputs=outputs,
        api_visibility="undocumented",
        api_name="reconstruct_ui",
        concurrency_id="reconstruct",
    )
    reconstructed.success(
        do_recognise,
        inputs=[last],
        outputs=[recognised, recognised_gallery],
        api_visibility="private",
        concurrency_id="reconstruct",
    )
    reconstructed.success(  # beside the recognition panel, not after it
        camera_again,
        inputs=[last],
        outputs=[viewer, gt_view],
        js=after_models_load("#viewer"),
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )

    def do_recolor(colored, rec: Reconstruction | None, request: gr.Request):
        """Export the last result again with or without colours (the network does not rerun)."""
        if rec is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        session = request.session_hash if request is not None else None
        try:
            rec = ctx.reconstructor.recolor(rec, colored, session=session)
        except _USER_ERRORS as exc:
            raise _error(exc) from None
        return (
            gr.Model3D(value=str(rec.files.glb), camera_position=viewer_camera(rec.estimate)),
            [str(p) for p in rec.files.downloads()],
            stats_markdown(rec),
            rec,
        )

    color.input(
        do_recolor,
        inputs=[color, last],
        outputs=[viewer, downloads, stats, last],
        api_visibility="private",
        concurrency_id="reconstruct",
    ).then(
        lambda rec: camera_again(rec)[0],
        inputs=[last],
        outputs=[viewer],
        js=after_models_load("#viewer"),
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )

    def do_compare(path, fg_ratio, colored, request: gr.Request):
        if not path:
            raise _error("Upload, paste or capture an image first, or click an example.")
        session = request.session_hash if request is not None else None
        try:
            prepared, item_id = ctx.reconstructor.prepare_input(path, fg_ratio)
        except _USER_ERRORS as exc:
            raise _error(exc) from None
        rows = compare_head(item_id is not None)
        views: list[gr.Model3D] = []
        cameras: list[tuple[float, float, float | None] | None] = []
        for m in methods:
            try:
                rec = ctx.reconstructor.run(
                    prepared, m.name, session=session, item_id=item_id, color=colored
                )
                scores = None
                if item_id is not None:
                    scores = ground_truth_scores(
                        ctx.settings.benchmark_dir, item_id, rec.prediction
                    )
            except (ModelUnavailable, ReconstructionError) as exc:
                short = "no weights yet" if isinstance(exc, ModelUnavailable) else str(exc)
                rows.append(compare_failed_row(m, short, item_id is not None))
                views.append(gr.Model3D(value=None, elem_classes=[HIDDEN]))
                cameras.append(None)
                continue
            rows.append(compare_row(m, rec, scores))
            cameras.append(viewer_camera(rec.estimate))
            views.append(
                gr.Model3D(value=str(rec.files.glb), camera_position=cameras[-1], elem_classes=[])
            )
        return ["\n".join(rows) + compare_note(item_id), *views, cameras]

    def compare_cameras_again(cameras: list):
        """Each compare view's camera again, after the viewers' opening animations."""
        return [gr.skip() if c is None else _camera_again(tuple(c)) for c in cameras] + [
            gr.skip()
        ] * (len(compare_views) - len(cameras))

    run_all.click(
        do_compare,
        inputs=[image, ratio, color],
        outputs=[compare_text, *compare_views, compare_cameras],
        api_visibility="undocumented",
        api_name="compare_all",
        concurrency_id="reconstruct",
    ).then(
        compare_cameras_again,
        inputs=[compare_cameras],
        outputs=compare_views,
        js=after_models_load("#compare-views"),
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )

    def api_reconstruct(path, name, request: gr.Request):
        """Reconstruct an image with one method (default: the demo's default method).

        Returns (the GLB: +y up, front towards +z, unit cube, coloured from the photo where
        the estimated camera sees it; the report: method, kind, predicted_class,
        class_probability, azimuth and elevation in degrees (null without a camera estimate),
        colored, colored_share, files, error)."""
        if not path:
            raise _error("no image given")
        session = request.session_hash if request is not None else None
        name = name or default or ""
        try:
            rec = ctx.reconstructor.run(path, name, session=session)
        except _USER_ERRORS as exc:
            raise _error(exc) from None
        report = MethodReport.from_reconstruction(rec, kinds.get(name), names_only=True)
        return str(rec.files.glb), report.to_dict()

    api_button.click(
        api_reconstruct,
        inputs=[image, method],
        outputs=[api_glb, api_report],
        api_name="reconstruct",
        concurrency_id="reconstruct",
    )

    def poll():
        return (
            ctx.status_html(),
            gr.Timer(active=ctx.busy()),
            benchmark_ready(ctx.settings.benchmark_dir),
        )

    timer.tick(
        poll, outputs=[status, timer, ready], show_progress="hidden", api_visibility="private"
    )

    with examples_box:

        @gr.render(inputs=[ready])
        def _examples_gallery(_ready: bool):
            exs = ctx.examples()
            if not exs:
                gr.Markdown("No examples available.")
                return
            gr.Markdown(examples_heading([e.split for e in exs]), elem_id="examples-heading")
            gallery = gr.Gallery(
                value=[(str(e.path), example_caption(e.split, e.label)) for e in exs],
                show_label=False,
                columns=6,
                height="auto",
                allow_preview=False,
                object_fit="contain",
                buttons=[],
                elem_id="examples",
            )

            def pick(evt: gr.SelectData):
                return str(exs[evt.index].path)

            gallery.select(pick, outputs=[image], api_visibility="private", queue=False)


def add_about_tab(settings: Settings) -> None:
    """The About tab; call inside an open `gr.Tabs()`. Figures carry their caption as text
    above them, not as Gradio's label badge (which covers the plot's top-left tick)."""
    with gr.Tab("About"):
        gr.Markdown(ABOUT, elem_id="about-text")
        for path, caption in (
            (CONTACT_SHEET, ABOUT_FIGURES[0]),
            (SEED_DISTRIBUTIONS, ABOUT_FIGURES[1]),
        ):
            if not path.is_file():
                gr.Markdown(f"*(The figure `{path.relative_to(REPO_ROOT)}` is not in this copy.)*")
                continue
            gr.Markdown(f"**{caption}**")
            gr.Image(str(path), show_label=False, interactive=False, buttons=["fullscreen"])
