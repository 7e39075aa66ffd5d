"""The Leaderboard tab (gradio): the scoring queue, the table, the per-class view of every
class, distributions, tests against the recognition baselines and a comparison of two entries.

Built by `leaderboard.ui.add_leaderboard_tabs`. What it shows is formatted by
`leaderboard.views` (every figure with 3 decimals, the headline as "0.341 ± 0.015"); figures
and the per-class heat map are drawn once per change of the leaderboard
(`LeaderboardService.memo`), so a page load redraws nothing. No component is an empty box:
tables without rows and the Download box stay hidden until they have something to show.
A link `?entry=<id>` (from "My submissions") opens this tab and highlights that entry's row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd

from leaderboard import views
from leaderboard.exports import ExportFolder
from leaderboard.figures import ecdf_figure, figure_html, per_class_figure
from leaderboard.service import REFERENCE_BASELINES, LeaderboardService

__all__ = ["leaderboard_tab", "BARS_SHOWN", "QUEUE_REFRESH_S", "TAB_ID"]

TAB_ID = "leaderboard"  # the tab's id in the enclosing gr.Tabs (selected by `?entry=` links)

BARS_SHOWN = 8  # entries drawn in the per-class bar chart (the heat map shows all)
QUEUE_REFRESH_S = 5.0  # how often an open page looks at the scoring queue
_HIGHLIGHT = "background-color: #fff3bf; font-weight: 600"
# Widths that fit each header's longest word in the tables' font (`_CSS`), so no header
# breaks inside a word ("Tier", "Verified") and the default columns fit 1,200 px.
_WIDTHS = {
    "Tier": "52px", "Method": "148px", "Kind": "100px", "IoU ↑": "60px",
    "Chamfer-L1 ↓": "112px", "Coverage ↑": "96px", "Representation": "140px",
    "Verified": "88px", "Date": "96px", "Links": "92px", "ID": "48px",
    "Authors": "160px", "Training data": "140px",
}  # fmt: skip
_VERDICT_WIDTH = "140px"
_RECOGNITION_WIDTHS = ["190px", "100px", "330px", "64px", "72px", "96px", "110px", "80px"]
# The tables in the interface's own (proportional) font, figures with aligned digits.
_CSS = """<style>
#leaderboard-table th, #leaderboard-table th *, #leaderboard-table [data-testid^="cell-"],
#leaderboard-table [data-testid^="cell-"] *, #recognition-table th, #recognition-table th *,
#recognition-table [data-testid^="cell-"], #recognition-table [data-testid^="cell-"] *,
#queue-table [data-testid^="cell-"], #queue-table [data-testid^="cell-"] * {
  font-family: var(--font) !important; font-variant-numeric: tabular-nums; }
#leaderboard-table th *, #recognition-table th * { word-break: normal !important;
  overflow-wrap: normal !important; }
</style>"""


def _widths(columns: list[str]) -> list[str]:
    """Column widths that fit every header word on one line ("Tier", "Verified")."""
    out = []
    for column in columns:
        if column.startswith("vs "):
            out.append(_VERDICT_WIDTH)
        elif "± 95% CI" in column:
            out.append("128px")
        else:
            out.append(_WIDTHS.get(column, "140px"))
    return out


def _datatypes(frame: pd.DataFrame) -> list[str]:
    return ["markdown" if c in ("Links", "Leaderboard") else "str" for c in frame.columns]


def _entry_param(request: gr.Request | None) -> int | None:
    """The entry id of a `?entry=<id>` link, or None."""
    params = getattr(request, "query_params", None) or {}
    value = str(params.get("entry", "") or "").strip()
    return int(value) if value.isdigit() and len(value) < 10 else None


def board_update(frame: pd.DataFrame, highlight_row: int | None = None) -> Any:
    """The table as a Dataframe update (hidden when there are no rows); `highlight_row`:
    the position of a row to highlight."""
    value: Any = frame
    if highlight_row is not None:
        value = frame.style.apply(
            lambda row: [_HIGHLIGHT if row.name == highlight_row else ""] * len(row), axis=1
        )
    return gr.Dataframe(
        value=value, datatype=_datatypes(frame), column_widths=_widths(list(frame.columns)),
        visible=not frame.empty,
    )  # fmt: skip


def leaderboard_tab(
    service: LeaderboardService,
    exports: ExportFolder,
    guard: Callable[[Callable[..., Any]], Callable[..., Any]],
    authorize: Callable[..., str | None],
    maintained: bool,
    on_load: Callable[[Any, list[Any]], None],
    split_note: Callable[[LeaderboardService], str],
) -> None:
    """Create the Leaderboard tab inside an open `gr.Tabs()`.

    `guard` wraps handlers (errors without server paths); `authorize(token, profile,
    request)` names a maintainer or raises; `maintained`: whether any maintainer is
    configured (else no token field); `on_load(fn, outputs)` runs `fn` at page load.
    """
    label = service.headline_label
    every = service.display_columns()
    default_columns = views.default_display_columns(service.headline_key,
                                                    list(REFERENCE_BASELINES))  # fmt: skip
    sortable = [c for c in views.BASE_COLUMNS(service.headline_key) if c.endswith(("↑", "↓"))]

    def order(search: str, reps: list[str], baselines: bool) -> list[views.Entry]:
        """The entries the table shows, in its default order (tier)."""
        ids = service.table(search, reps or None, baselines)["ID"].tolist()
        by_id = {e.id: e for e in service.entries()}
        return [by_id[int(i)] for i in ids if int(i) in by_id]

    def note(frame: pd.DataFrame, filtered: bool, entry: int | None = None,
             found: bool = False) -> str:  # fmt: skip
        if frame.empty and filtered:
            return "No entry matches these filters."
        if frame.empty:
            return "No scored entries yet: the first appears here once the scoring queue has scored it."
        if entry is not None:
            return (f"Entry #{entry} is highlighted." if found else
                    f"Entry #{entry} is not on the leaderboard (yet): see its status in My submissions.")  # fmt: skip
        return ""

    @guard
    def table(search: str, reps: list[str], baselines: bool, columns: list[str],
              sort_by: str) -> tuple[Any, str]:  # fmt: skip
        frame = service.display_table(search, reps or None, baselines, columns or None,
                                      sort_by or None)  # fmt: skip
        filtered = bool(search.strip() or reps or not baselines)
        return board_update(frame), note(frame, filtered)

    def per_class_views(search: str, reps: list[str], baselines: bool) -> tuple[str, str]:
        entries = order(search, reps, baselines)
        key = tuple(e.id for e in entries)
        classes = service.benchmark_classes()

        def heatmap() -> str:
            return views.per_class_heatmap(entries, label, classes)

        def bars() -> str:
            if not entries:
                return ""
            shown = entries[:BARS_SHOWN]
            frame = service.per_class_table([e.id for e in shown])
            frame = frame[["Class", *[e.name for e in shown if e.name in frame.columns]]]
            kinds = {e.name: e.kind_label for e in shown}
            fig = per_class_figure(
                frame, label, baselines={n for n, k in kinds.items() if k == views.RECOGNITION},
                references={n for n, k in kinds.items() if k == views.REFERENCE},
            )  # fmt: skip
            more = (
                f" (the first {BARS_SHOWN} rows of the table)" if len(entries) > BARS_SHOWN else ""
            )
            return figure_html(fig, f"{label} per class, bars per entry{more}")

        # The tables' style travels with the heat map (always on the page), not in a block
        # of its own that would leave a gap.
        return _CSS + service.memo(("heatmap", key), heatmap), service.memo(("bars", key), bars)

    @guard
    def refresh_all(search: str, reps: list[str], baselines: bool, columns: list[str],
                    sort_by: str) -> tuple[Any, str, str, str]:  # fmt: skip
        board, message = table(search, reps, baselines, columns, sort_by)
        return (board, message, *per_class_views(search, reps, baselines))

    def initial(request: gr.Request) -> tuple[Any, str, str, str]:
        entry = _entry_param(request)
        frame = service.display_table(columns=default_columns)
        found = None
        if entry is not None:
            ids = service.table()["ID"].tolist()
            found = ids.index(entry) if entry in ids else None
        return (
            board_update(frame, found), note(frame, False, entry, found is not None),
            *per_class_views("", [], True),
        )  # fmt: skip

    def queue() -> tuple[Any, str, int]:
        """The queue's table and sentence, and how many jobs have left it so far (done or
        failed: what makes the table change)."""
        frame = service.queue_table()
        finished = service.finished_count()
        if frame.empty:
            return gr.Dataframe(visible=False), "", finished
        now = frame[frame["Status"] == "being scored"]
        scoring = ", ".join(f"{m} ({i})" for m, i in zip(now["Method"], now["Items"], strict=True))
        head = (
            f"**Scoring queue**: {len(frame)} submission(s); being scored now: "
            f"{scoring or 'none'}. This refreshes itself every {QUEUE_REFRESH_S:g} s, and the "
            "table below when an entry is scored."
        )
        return gr.Dataframe(value=frame, visible=True), head, finished

    def tick(seen: int | None, search: str, reps: list[str], baselines: bool,
             columns: list[str], sort_by: str) -> tuple[Any, ...]:  # fmt: skip
        frame, head, finished = queue()
        if seen is None or finished == seen:
            return frame, head, finished, gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return (frame, head, finished, *refresh_all(search, reps, baselines, columns, sort_by))

    def api_table() -> list[dict[str, Any]]:
        return service.records()

    def export(kind: str, search: str, reps: list[str], baselines: bool,
               request: gr.Request | None) -> str:  # fmt: skip
        frame = service.table(search=search, representations=reps or None,
                              show_baselines=baselines, per_class=True)  # fmt: skip
        session = getattr(request, "session_hash", None)
        return str(exports.write(frame, kind, session))

    @guard
    def export_csv(search: str, reps: list[str], baselines: bool, per_class: bool = True,
                   request: gr.Request = None) -> str:  # type: ignore[assignment]  # fmt: skip
        return export("csv", search, reps, baselines, request)

    @guard
    def export_json(search: str, reps: list[str], baselines: bool, per_class: bool = True,
                    request: gr.Request = None) -> str:  # type: ignore[assignment]  # fmt: skip
        return export("json", search, reps, baselines, request)

    @guard
    def analysis(ids: list[int]) -> tuple[Any, Any, str]:
        entries = service.entries()
        chosen = ids or [e.id for e in entries]
        dist = service.distributions(chosen)
        recognition = views.format_frame(service.recognition_table())
        fig = ecdf_figure(
            dist, {e.name for e in entries if e.kind_label == views.RECOGNITION}, label,
            references={e.name for e in entries if e.kind_label == views.REFERENCE},
        )  # fmt: skip
        message = "" if not recognition.empty else (
            "No tests yet: they need the Clustering or Retrieval baseline and one more entry."
        )  # fmt: skip
        return (gr.Plot(value=fig, visible=bool(dist)),
                gr.Dataframe(value=recognition, visible=not recognition.empty,
                             column_widths=_RECOGNITION_WIDTHS), message)  # fmt: skip

    @guard
    def compare(a: int | None, b: int | None, token: str = "",
                profile: gr.OAuthProfile | None = None,
                request: gr.Request = None,  # type: ignore[assignment]
                ) -> tuple[pd.DataFrame, pd.DataFrame, list[Any]]:  # fmt: skip
        if a is None or b is None:
            raise gr.Error("choose two entries")
        actor = None  # item-level differences are for maintainers only
        if token or profile is not None:
            actor = authorize(token, profile, request)
        result = service.compare(int(a), int(b), actor=actor)
        gallery = [
            (service.view_image(item), f"{item}: {diff:+.3f}")
            for item, diff in zip(
                result.items["Item"], result.items["Difference (A - B)"], strict=True
            )
        ]
        return views.format_frame(result.per_class), views.format_frame(result.items), gallery

    def choices() -> tuple[Any, Any, Any]:
        options = service.entry_choices()
        return (
            gr.Dropdown(choices=options),
            gr.Dropdown(choices=options),
            gr.Dropdown(choices=options),
        )

    parent = gr.context.Context.block  # the enclosing gr.Tabs, when there is one
    with gr.Tab("Leaderboard", id=TAB_ID):
        split = gr.Markdown(split_note(service))
        gr.Markdown(
            f"Entries are ranked in **tiers**: an entry whose 95% bootstrap interval (resampling "
            f"test shapes) of the headline {label} overlaps the leader's shares its tier; "
            f"{label} reads *mean ± half the interval's width*. ↑ higher is better, ↓ lower is "
            f"better. **vs Clustering / vs Retrieval**: is the entry distinguishable from that "
            f"recognition baseline on per-item {label} (Wilcoxon signed-rank on the same items; "
            f"KS in the tests below)? *n.s.*: not distinguishable (p ≥ 0.05). **Kind**: "
            f"*baseline* = a recognition baseline (dashed in plots), *reference* = another seeded method such as Oracle NN, which uses the "
            f"ground truth (dotted), *submission* (solid)."
        )
        about = gr.Markdown()
        queue_head = gr.Markdown()
        queue_table = gr.Dataframe(label="Scoring queue", interactive=False, visible=False,
                                   elem_id="queue-table")  # fmt: skip
        with gr.Row():
            search = gr.Textbox(label="Search method, authors, training data", scale=2)
            reps = gr.CheckboxGroup(["voxels", "mesh", "points"], label="Representation")
            baselines = gr.Checkbox(True, label="Show baselines and references")
            sort_by = gr.Dropdown([""] + sortable, value="", label="Sort by (default: tier)")
        with gr.Accordion("Columns", open=False):
            columns = gr.CheckboxGroup(every, value=default_columns, label="Columns shown")
        board_note = gr.Markdown()
        board = gr.Dataframe(label="Leaderboard", interactive=False, wrap=True, visible=False,
                             elem_id="leaderboard-table", max_height=900)  # fmt: skip
        with gr.Row():
            refresh = gr.Button("Refresh")
            csv_btn = gr.Button("Export CSV")
            json_btn = gr.Button("Export JSON")
            api_btn = gr.Button("api", visible=False)
        download = gr.File(label="Download", interactive=False, visible=False)
        records = gr.JSON(visible=False)
        with gr.Accordion(f"{label} per class: every class at once", open=True):
            with gr.Row(equal_height=False):  # side by side where the page is wide enough
                with gr.Column(min_width=1000, scale=3):
                    heatmap = gr.HTML(elem_id="per-class-heatmap", min_height=0)
                with gr.Column(min_width=640, scale=2):
                    bars = gr.HTML(elem_id="per-class-bars", min_height=0)
        filters = [search, reps, baselines, columns, sort_by]
        everything = [board, board_note, heatmap, bars]
        for trigger in (refresh.click, search.submit, reps.change, baselines.change):
            trigger(refresh_all, filters, everything, api_visibility="private",
                    concurrency_limit=None)  # fmt: skip
        for trigger in (columns.change, sort_by.change):
            trigger(table, filters, [board, board_note], api_visibility="private",
                    concurrency_limit=None)  # fmt: skip
        # Off the queue: a read is cheap, and a direct POST /gradio_api/run/leaderboard answers
        # in one round trip (gradio_client works either way).
        api_btn.click(api_table, None, records, api_name="leaderboard", queue=False)
        for button, fn in ((csv_btn, export_csv), (json_btn, export_json)):
            button.click(fn, filters[:3], download, api_visibility="private").success(
                lambda: gr.File(visible=True), None, download, api_visibility="private"
            )
        seen = gr.State(None)
        timer = gr.Timer(QUEUE_REFRESH_S)
        timer.tick(tick, [seen, *filters], [queue_table, queue_head, seen, *everything],
                   api_visibility="private", show_progress="hidden",
                   concurrency_limit=None)  # fmt: skip

        with gr.Accordion("Distributions and tests against the recognition baselines",
                          open=False):  # fmt: skip
            pick = gr.Dropdown([], multiselect=True, label="Entries (empty: all)")
            show = gr.Button("Show")
            analysis_note = gr.Markdown()
            # No label over the plot: it would hide the top of the axes (the 1.0 tick).
            ecdf_plot = gr.Plot(show_label=False, visible=False, elem_id="ecdf-plot")
            recognition = gr.Dataframe(label="Tests against the recognition baselines",
                                       interactive=False, visible=False, wrap=True,
                                       elem_id="recognition-table")  # fmt: skip
            show.click(analysis, pick, [ecdf_plot, recognition, analysis_note],
                       api_visibility="private")  # fmt: skip

        with gr.Accordion("Compare two entries", open=False):
            with gr.Row():
                entry_a = gr.Dropdown([], label="Entry A")
                entry_b = gr.Dropdown([], label="Entry B")
            compare_token = gr.Textbox(
                label="Maintainer token (optional: the items where they disagree most; "
                "per-item scores are not public)", type="password", visible=maintained,
            )  # fmt: skip
            compare_btn = gr.Button("Compare")
            with gr.Column(visible=False) as diff_box:
                diff_table = gr.Dataframe(label="Per-class difference", interactive=False)
            with gr.Column(visible=False) as items_box:
                items_table = gr.Dataframe(label="Items where they disagree most (maintainers)",
                                           interactive=False)  # fmt: skip
                gallery = gr.Gallery(label="Input views of those items", columns=4,
                                     height="auto")  # fmt: skip
            # A refusal (wrong token) is said in a message, not as "Error" over the tables.
            compare_btn.click(compare, [entry_a, entry_b, compare_token],
                              [diff_table, items_table, gallery], api_visibility="private",
                              show_progress="hidden")  # fmt: skip
            diff_table.change(lambda f: gr.Column(visible=_has_rows(f)), diff_table, diff_box,
                              api_visibility="private", show_progress="hidden")  # fmt: skip
            items_table.change(lambda f: gr.Column(visible=_has_rows(f)), items_table, items_box,
                               api_visibility="private", show_progress="hidden")  # fmt: skip
        refresh.click(choices, None, [pick, entry_a, entry_b], api_visibility="private")

    on_load(initial, everything)
    if isinstance(parent, gr.Tabs):  # a `?entry=<id>` link opens on this tab

        def open_tab(request: gr.Request) -> Any:
            return gr.Tabs(selected=TAB_ID) if _entry_param(request) is not None else gr.skip()

        on_load(open_tab, [parent])
    on_load(queue, [queue_table, queue_head, seen])
    on_load(service.describe, [about])
    on_load(lambda: split_note(service), [split])
    on_load(choices, [pick, entry_a, entry_b])

    def drop_exports(request: gr.Request) -> None:
        exports.drop(getattr(request, "session_hash", None))

    blocks = gr.context.Context.root_block
    if blocks is not None:
        blocks.unload(drop_exports)


def _has_rows(frame: Any) -> bool:
    if isinstance(frame, pd.DataFrame):
        return not frame.empty
    data = frame.get("data") if isinstance(frame, dict) else None
    return bool(data)
