"""Gradio tabs of the leaderboard: Leaderboard, Submit, Maintainers.

`add_leaderboard_tabs(service)` is called inside an open `gr.Tabs()` of the app's Blocks.
Handlers are short: parse, call one `LeaderboardService` method, turn known errors into
`gr.Error`. Named API endpoints for `gradio_client`:

- `/submit` (archive file, metadata JSON string, submitter name[, submitter key]) -> the
  submission's public id (a string, "s" and 16 hex digits; the key only where
  SVR_REQUIRE_KEYS is on)
- `/submission_status` (public id) -> status dict (overall and per-class results when done)
- `/leaderboard` () -> the table as a list of records

Read-only handlers (the table, `/leaderboard`, `/submission_status`, "My submissions") take a
few milliseconds and run without the queue's concurrency limit, so reads never wait behind
each other or behind uploads (the limit, SVR_CONCURRENCY, is for the heavy handlers).

Nothing returned is a path inside SVR_HOME or the benchmark: exports go through a
per-session folder that is emptied (`leaderboard.exports`); view images are returned as
arrays; every error message passes `service.public_message` (no server path), including
unexpected exceptions of a handler (`_guard`).

Submitter identity: on a Hugging Face Space (SPACE_ID set) the OAuth user; elsewhere the
free-text "Submitter name" field, which is NOT authenticated (open mode) unless the server
requires submitter keys (SVR_REQUIRE_KEYS=1: name and key). The client's address (for the
rate limits of refusals and maintainer tokens) is the request's peer address; on a Space,
the last hop of X-Forwarded-For (the address the Space's proxy saw).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd

from leaderboard import views
from leaderboard.exports import ExportFolder
from leaderboard.figures import ecdf_figure, per_class_figure
from leaderboard.service import (
    ADMIN_ACTIONS,
    AuthError,
    LeaderboardService,
    ServiceError,
    SubmissionRejected,
)
from svr.limits import discard_upload

__all__ = ["add_leaderboard_tabs"]

logger = logging.getLogger(__name__)

_ARCHIVE_TYPES = [".zip", ".tar", ".gz", ".tgz", ".npz"]
_SUBMIT_HELP = """
Upload one archive (`.zip`, `.tar`, `.tar.gz`/`.tgz` or `.npz`) with one prediction per test
item named `<class>/<shape id>/<view>.<ext>` and a `submission.json` manifest (or fill in
method, representation and frame below). Get a valid example with
`python -m leaderboard template --benchmark DIR --out example.zip`. The archive is checked at
once; scoring runs in the background (see "My submissions"). Every test item needs a
prediction: an archive with items missing is refused, saying which. The same predictions are
scored once, whoever submits them. Limits: {per_day} submissions per 24 h (failed ones do not
count; deleting does not reset it), {concurrent} waiting at a time; names that differ only in
case, look-alike letters or a trailing number count as one. Method names of the reference
entries, and words such as "verified" or "baseline", are reserved.
"""


def use_oauth(on_space: bool, oauth_configured: bool = True) -> bool:
    """Whether to offer Hugging Face login: only on a Space whose OAuth is configured
    (`hf_oauth: true` sets OAUTH_CLIENT_ID; a LoginButton breaks page construction elsewhere)
    and only when gradio's OAuth extras (`gradio[oauth]`: authlib, itsdangerous) are
    installed, else the page fails to build; then token login only."""
    if not on_space:
        return False
    if not oauth_configured:
        logger.warning("Hugging Face login disabled: OAUTH_CLIENT_ID is not set (hf_oauth: true)")
        return False
    import importlib.util

    missing = [m for m in ("authlib", "itsdangerous") if importlib.util.find_spec(m) is None]
    if missing:
        logger.warning(
            "Hugging Face login disabled: %s not installed (add gradio[oauth] to requirements)",
            ", ".join(missing),
        )
        return False
    return True


def _error(exc: Exception, service: LeaderboardService) -> gr.Error:
    """The gr.Error shown for `exc`, with no server path in it."""
    if isinstance(exc, ServiceError):
        message = exc.reason
        if exc.details:
            message += "\n" + "\n".join(f"- {d}" for d in exc.details[:20])
    elif isinstance(exc, gr.Error):
        message = str(exc.message)
    else:
        message = str(exc)
    return gr.Error(service.public_message(message), duration=None)


def _guard(service: LeaderboardService) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a handler so that whatever it raises reaches the user without a server path:
    known errors with their message, anything else as an internal error (logged)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (gr.Error, ServiceError, AuthError) as exc:
                raise _error(exc, service) from None
            except Exception as exc:
                logger.exception("handler %s failed", fn.__name__)
                raise _error(
                    RuntimeError(f"internal error ({type(exc).__name__}: {exc})"), service
                ) from None

        return wrapper

    return decorate


def _client(request: gr.Request | None, on_space: bool) -> str | None:
    """The client's address (see the module docstring); None without a request."""
    if request is None:
        return None
    if on_space:
        forwarded = (request.headers or {}).get("x-forwarded-for", "")
        hop = forwarded.split(",")[-1].strip()
        if hop:
            return hop
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or None


def _datatypes(frame: pd.DataFrame) -> list[str]:
    types = []
    for column in frame.columns:
        if column in ("Paper", "Code"):
            types.append("markdown")
        elif pd.api.types.is_numeric_dtype(frame[column]):
            types.append("number")
        else:
            types.append("str")
    return types


# ----------------------------------------------------------------------------- tabs


def add_leaderboard_tabs(service: LeaderboardService, exports: ExportFolder | None = None) -> None:
    """Create the Leaderboard, Submit and Maintainers tabs inside an open `gr.Tabs()`;
    `exports`: where CSV/JSON exports are written for a moment (default: a folder in the
    system temp folder)."""
    _leaderboard_tab(service, exports or ExportFolder())
    _submit_tab(service)
    _maintainers_tab(service)


def _leaderboard_tab(service: LeaderboardService, exports: ExportFolder) -> None:
    guard = _guard(service)
    oauth = use_oauth(service.settings.on_space, service.settings.oauth_configured)
    label = service.headline_label
    base_columns = views.BASE_COLUMNS(service.headline_key)
    default_columns = [c for c in base_columns if c not in ("Authors", "Training data", "ID")]

    def table(search: str, reps: list[str], baselines: bool, per_class: bool,
              columns: list[str], sort_by: str) -> Any:  # fmt: skip
        frame = service.table(
            search=search, representations=reps or None, show_baselines=baselines,
            per_class=per_class, columns=columns or None, sort_by=sort_by or None,
            markdown_links=True,
        )  # fmt: skip
        return gr.Dataframe(value=frame, datatype=_datatypes(frame))

    def api_table() -> list[dict[str, Any]]:
        return service.records()

    def export(kind: str, search: str, reps: list[str], baselines: bool, per_class: bool,
               request: gr.Request | None) -> str:  # fmt: skip
        frame = service.table(search=search, representations=reps or None,
                              show_baselines=baselines, per_class=per_class)  # fmt: skip
        session = getattr(request, "session_hash", None)
        return str(exports.write(frame, kind, session))

    @guard
    def export_csv(search: str, reps: list[str], baselines: bool, per_class: bool,
                   request: gr.Request = None) -> str:  # type: ignore[assignment]  # fmt: skip
        return export("csv", search, reps, baselines, per_class, request)

    @guard
    def export_json(search: str, reps: list[str], baselines: bool, per_class: bool,
                    request: gr.Request = None) -> str:  # type: ignore[assignment]  # fmt: skip
        return export("json", search, reps, baselines, per_class, request)

    @guard
    def analysis(ids: list[int]) -> tuple[Any, Any, Any, pd.DataFrame]:
        entries = service.entries()
        chosen = ids or [e.id for e in entries]
        frame = service.per_class_table(chosen)
        baselines = {e.name for e in entries if e.baseline}
        dist = service.distributions(chosen)
        return (
            frame,
            per_class_figure(frame, label),
            ecdf_figure(dist, baselines, label),
            service.recognition_table(),
        )

    @guard
    def compare(a: int | None, b: int | None, token: str = "",
                profile: gr.OAuthProfile | None = None,
                request: gr.Request = None,  # type: ignore[assignment]
                ) -> tuple[pd.DataFrame, pd.DataFrame, list[Any]]:  # fmt: skip
        if a is None or b is None:
            raise gr.Error("choose two entries")
        actor = None  # item-level differences are for maintainers only
        if token or (oauth and profile is not None):
            client = _client(request, service.settings.on_space)
            actor = service.authorize(token=token or None, profile=profile, client=client)
        result = service.compare(int(a), int(b), actor=actor)
        gallery = [
            (service.view_image(item), f"{item}: {diff:+.3f}")
            for item, diff in zip(
                result.items["Item"], result.items["Difference (A - B)"], strict=True
            )
        ]
        return result.per_class, result.items, gallery

    def choices() -> tuple[Any, Any, Any]:
        options = service.entry_choices()
        return (
            gr.Dropdown(choices=options),
            gr.Dropdown(choices=options),
            gr.Dropdown(choices=options),
        )

    with gr.Tab("Leaderboard"):
        split = gr.Markdown(split_note(service))
        gr.Markdown(
            f"Entries are ranked in **tiers**: an entry whose 95% bootstrap interval (resampling "
            f"test shapes) of the headline {label} overlaps the leader's shares its tier. "
            f'↑ higher is better, ↓ lower is better. "vs Clustering / Retrieval": is the entry '
            f"distinguishable from a recognition baseline on per-item {label} (Wilcoxon "
            f"signed-rank on the same items; KS in the analysis table)?"
        )
        about = gr.Markdown()
        with gr.Row():
            search = gr.Textbox(label="Search method, authors, training data", scale=2)
            reps = gr.CheckboxGroup(["voxels", "mesh", "points"], label="Representation")
            baselines = gr.Checkbox(True, label="Show baselines")
            per_class = gr.Checkbox(False, label="Per-class columns")
        with gr.Row():
            columns = gr.CheckboxGroup(base_columns, value=default_columns, label="Columns")
            sort_by = gr.Dropdown(
                [""] + [c for c in base_columns if c.endswith(("↑", "↓"))], value="",
                label="Sort by (default: tier)",
            )  # fmt: skip
        board = gr.Dataframe(label="Leaderboard", interactive=False, wrap=True)
        with gr.Row():
            refresh = gr.Button("Refresh")
            csv_btn = gr.Button("Export CSV")
            json_btn = gr.Button("Export JSON")
            api_btn = gr.Button("api", visible=False)
        download = gr.File(label="Download", interactive=False)
        records = gr.JSON(visible=False)
        filters = [search, reps, baselines, per_class, columns, sort_by]
        for trigger in (refresh.click, search.submit, reps.change, baselines.change,
                        per_class.change, columns.change, sort_by.change):  # fmt: skip
            trigger(table, filters, board, api_visibility="private", concurrency_limit=None)
        # Off the queue: a read is cheap, and a direct POST /gradio_api/run/leaderboard answers
        # in one round trip (gradio_client works either way).
        api_btn.click(api_table, None, records, api_name="leaderboard", queue=False)
        csv_btn.click(export_csv, filters[:4], download, api_visibility="private")
        json_btn.click(export_json, filters[:4], download, api_visibility="private")

        with gr.Accordion(
            "Per-class results, distributions, recognition or reconstruction?", open=False
        ):
            pick = gr.Dropdown([], multiselect=True, label="Entries (empty: all)")
            show = gr.Button("Show")
            class_table = gr.Dataframe(label=f"{label} per class", interactive=False)
            class_plot = gr.Plot(label=f"{label} per class")
            ecdf_plot = gr.Plot(label=f"Distribution of per-item {label} (baselines dashed)")
            recognition = gr.Dataframe(
                label="Tests against the recognition baselines", interactive=False
            )
            show.click(analysis, pick, [class_table, class_plot, ecdf_plot, recognition],
                       api_visibility="private")  # fmt: skip

        with gr.Accordion("Compare two entries", open=False):
            with gr.Row():
                entry_a = gr.Dropdown([], label="Entry A")
                entry_b = gr.Dropdown([], label="Entry B")
            compare_token = gr.Textbox(
                label="Maintainer token (optional: the items where they disagree most; "
                "per-item scores are not public)", type="password",
            )  # fmt: skip
            compare_btn = gr.Button("Compare")
            diff_table = gr.Dataframe(label="Per-class difference", interactive=False)
            items_table = gr.Dataframe(label="Items where they disagree most (maintainers)",
                                       interactive=False)  # fmt: skip
            gallery = gr.Gallery(label="Input views of those items", columns=4, height="auto")
            compare_btn.click(compare, [entry_a, entry_b, compare_token],
                              [diff_table, items_table, gallery],
                              api_visibility="private")  # fmt: skip
        refresh.click(choices, None, [pick, entry_a, entry_b], api_visibility="private")

    # Fill the table and the dropdowns when the page loads.
    def initial_table() -> Any:
        return table("", [], True, False, default_columns, "")

    _on_load(initial_table, [board])
    _on_load(service.describe, [about])
    _on_load(lambda: split_note(service), [split])
    _on_load(choices, [pick, entry_a, entry_b])

    def drop_exports(request: gr.Request) -> None:
        exports.drop(getattr(request, "session_hash", None))

    blocks = gr.context.Context.root_block
    if blocks is not None:
        blocks.unload(drop_exports)


def split_note(service: LeaderboardService) -> str:
    """Markdown saying whether the test split is secret or public (practice), with the link to
    the test inputs (`GET /api/test-inputs.zip`)."""
    from leaderboard.http import TEST_INPUTS_ZIP

    try:
        meta = service.benchmark.meta
    except Exception:  # noqa: BLE001 - no benchmark yet: said in words
        return "The benchmark is being prepared; the test inputs appear here when it is ready."
    link = f"[Download the test inputs]({TEST_INPUTS_ZIP.lstrip('/')}) (views, cameras and item ids; no ground truth)."
    if meta.test_split == "secret":
        return (
            f"**Secret test split** (fingerprint `{meta.test_fingerprint}`): generated from a "
            f"maintainer's secret, so nobody can rebuild it; predict from its inputs. {link}"
        )
    return (
        "**Practice mode: this server's test split is public.** Anyone can rebuild it from the "
        "code, so a score here shows that a submission works, not that a method generalises; "
        "a maintainer runs the real leaderboard with `SVR_TEST_SECRET` set, and practice "
        f"entries are never mixed with a secret split's. {link}"
    )


def _on_load(fn: Any, outputs: list[Any]) -> None:
    """Run `fn` when the page loads (inside the enclosing Blocks)."""
    blocks = gr.context.Context.root_block
    if blocks is not None:
        blocks.load(fn, None, outputs, api_visibility="private")


def _submit_tab(service: LeaderboardService) -> None:
    settings = service.settings
    on_space = use_oauth(settings.on_space, settings.oauth_configured)
    guard = _guard(service)

    def who(name: str, profile: gr.OAuthProfile | None) -> str:
        if on_space:
            if profile is None:
                raise gr.Error("log in with Hugging Face to submit")
            return profile.username
        return (name or "").strip()

    @guard
    def submit(archive: str | None, metadata_json: str, name: str, key: str | None = None,
               profile: gr.OAuthProfile | None = None,
               request: gr.Request = None) -> str:  # type: ignore[assignment]  # fmt: skip
        if not archive:
            raise gr.Error("upload an archive first")
        try:
            metadata = json.loads(metadata_json or "{}")
        except json.JSONDecodeError as exc:
            raise gr.Error(f"metadata is not valid JSON: {exc}") from None
        if not isinstance(metadata, dict):
            raise gr.Error("metadata must be a JSON object")
        try:
            client = _client(request, settings.on_space)
            sid = service.submit(archive, metadata, who(name, profile), key=key, client=client)
            return service.public_id(sid)
        finally:
            discard_upload(archive, settings.uploads_dir)  # stored or refused: not needed

    @guard
    def submit_form(archive: str | None, method: str, authors: str, paper: str, code: str,
                    representation: str, frame: str, training: str, contact: str, name: str,
                    key: str = "", profile: gr.OAuthProfile | None = None,
                    request: gr.Request = None,  # type: ignore[assignment]
                    ) -> tuple[str, pd.DataFrame]:  # fmt: skip
        metadata = {
            "method": method, "authors": authors, "paper_url": paper, "code_url": code,
            "representation": representation, "frame": frame, "training_data": training,
            "contact": contact,
        }  # fmt: skip
        submitter = who(name, profile)
        if not archive:
            raise gr.Error("upload an archive first")
        try:
            client = _client(request, settings.on_space)
            sid = service.submit(archive, metadata, submitter, key=key, client=client)
            message = (
                f"Submission {service.public_id(sid)} accepted and queued for scoring "
                "(keep this id: `/submission_status` answers with it)."
            )
        except SubmissionRejected as exc:
            details = "\n".join(f"- {d}" for d in exc.details[:30])
            message = service.public_message(f"**{exc.reason}**\n\n{details}")
        finally:
            discard_upload(archive, settings.uploads_dir)  # stored or refused: not needed
        return message, service.submissions_of(submitter, key)

    @guard
    def status(submission_id: str) -> dict[str, Any]:
        return service.status(str(submission_id or "").strip())

    @guard
    def mine(name: str, key: str = "", profile: gr.OAuthProfile | None = None) -> pd.DataFrame:
        try:
            submitter = who(name, profile)
        except gr.Error:
            return service.submissions_of("")
        return service.submissions_of(submitter, key)

    with gr.Tab("Submit"):
        mode = gr.Markdown(split_note(service))
        _on_load(lambda: split_note(service), [mode])
        gr.Markdown(_SUBMIT_HELP.format(per_day=settings.max_per_day,
                                        concurrent=settings.max_concurrent))  # fmt: skip
        if on_space:
            gr.LoginButton()
            name = gr.Textbox(visible=False)
        else:
            name = gr.Textbox(
                label="Submitter name",
                info="Checked with your key." if settings.keys_required else
                "Not authenticated off a Hugging Face Space: anyone can type any name.",
            )  # fmt: skip
        key = gr.Textbox(label="Submitter key (from a maintainer)", type="password",
                         visible=settings.keys_required)  # fmt: skip
        archive = gr.File(label="Submission archive", file_types=_ARCHIVE_TYPES, type="filepath")
        with gr.Row():
            method = gr.Textbox(label="Method name")
            authors = gr.Textbox(label="Authors")
        with gr.Row():
            paper = gr.Textbox(label="Paper URL")
            code = gr.Textbox(label="Code URL")
        with gr.Row():
            representation = gr.Dropdown(["", "voxels", "mesh", "points"], value="",
                                         label="Representation (blank: from submission.json)")  # fmt: skip
            frame = gr.Dropdown(["", "object", "viewer"], value="",
                                label="Coordinate frame (blank: from submission.json)")  # fmt: skip
        with gr.Row():
            training = gr.Textbox(label="Training data")
            contact = gr.Textbox(label="Contact (not shown publicly)")
        go = gr.Button("Submit", variant="primary")
        result = gr.Markdown()
        my_table = gr.Dataframe(
            label="My submissions (status, progress, reasons)", interactive=False
        )
        refresh = gr.Button("Refresh my submissions")
        timer = gr.Timer(5.0)
        go.click(
            submit_form,
            [archive, method, authors, paper, code, representation, frame, training, contact, name,
             key],
            [result, my_table],
            api_visibility="private",
        )  # fmt: skip
        refresh.click(mine, [name, key], my_table, api_visibility="private",
                      concurrency_limit=None)  # fmt: skip
        timer.tick(mine, [name, key], my_table, api_visibility="private", show_progress="hidden",
                   concurrency_limit=None)  # fmt: skip

        # Programmatic endpoints (gradio_client).
        api_meta = gr.Textbox(visible=False)
        api_id = gr.Textbox(visible=False)
        api_status = gr.JSON(visible=False)
        api_submit = gr.Button(visible=False)
        api_poll = gr.Button(visible=False)
        api_submit.click(submit, [archive, api_meta, name, key], api_id, api_name="submit")
        api_poll.click(status, api_id, api_status, api_name="submission_status",
                       concurrency_limit=None)  # fmt: skip


def _maintainers_tab(service: LeaderboardService) -> None:
    settings = service.settings
    oauth = use_oauth(settings.on_space, settings.oauth_configured)
    guard = _guard(service)

    def actor_of(token: str, profile: gr.OAuthProfile | None, request: gr.Request | None) -> str:
        client = _client(request, settings.on_space)
        return service.authorize(token=token or None, profile=profile, client=client)

    @guard
    def apply(token: str, ids: str, action: str, profile: gr.OAuthProfile | None = None,
              request: gr.Request = None,  # type: ignore[assignment]
              ) -> tuple[str, pd.DataFrame]:  # fmt: skip
        actor = actor_of(token, profile, request)
        try:
            numbers = [int(x) for x in ids.replace(",", " ").split()]
        except ValueError:
            raise gr.Error("submission ids: numbers separated by commas or spaces") from None
        if not numbers:
            raise gr.Error("enter at least one submission id")
        lines = service.admin_action(action, numbers, actor)
        return "\n".join(f"- {line}" for line in lines), service.admin_table(actor)

    @guard
    def show_all(token: str, profile: gr.OAuthProfile | None = None,
                 request: gr.Request = None) -> pd.DataFrame:  # type: ignore[assignment]  # fmt: skip
        return service.admin_table(actor_of(token, profile, request))

    with gr.Tab("Maintainers"):
        gr.Markdown(
            "Hide, delete (soft), rescore (requeue with the current protocol), mark as baseline "
            "or verified. Sign in with the maintainer token"
            + (" or Hugging Face (allow-listed users and organisations)." if oauth else ".")
        )
        if oauth:
            gr.LoginButton()
        token = gr.Textbox(label="Maintainer token", type="password")
        with gr.Row():
            ids = gr.Textbox(label="Submission ids (e.g. 3, 5)")
            action = gr.Dropdown(list(ADMIN_ACTIONS), value="hide", label="Action")
        with gr.Row():
            go = gr.Button("Apply", variant="stop")
            list_btn = gr.Button("Show all submissions")
        result = gr.Markdown()
        everything = gr.Dataframe(label="All submissions", interactive=False)
        go.click(apply, [token, ids, action], [result, everything], api_visibility="private")
        list_btn.click(show_all, token, everything, api_visibility="private")
