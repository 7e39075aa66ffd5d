"""Gradio tabs of the leaderboard: Leaderboard (`leaderboard.ui_board`), Submit (with "My
submissions") and, only where a maintainer is configured, Maintainers.

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

from leaderboard.exports import ExportFolder
from leaderboard.identity import clean_upload_name
from leaderboard.reads import name_as_submitted
from leaderboard.service import (
    ADMIN_ACTIONS,
    AuthError,
    LeaderboardService,
    ServiceError,
    SubmissionRejected,
)
from svr.limits import discard_upload

__all__ = ["add_leaderboard_tabs", "maintainers_configured"]

logger = logging.getLogger(__name__)

_SESSIONS_KEPT = 10_000  # browser sessions whose upload names "My submissions" remembers
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


def _error(exc: Exception, service: LeaderboardService, user_error: bool = True) -> gr.Error:
    """The gr.Error shown for `exc`, with no server path in it. A user's error is logged
    as one line and Gradio prints no traceback for it; an internal one keeps its traceback
    (logged by the caller)."""
    if isinstance(exc, ServiceError):
        message = exc.reason
        if exc.details:
            message += "\n" + "\n".join(f"- {d}" for d in exc.details[:20])
    elif isinstance(exc, gr.Error):
        message = str(exc.message)
    else:
        message = str(exc)
    text = service.public_message(message)
    if user_error:
        logger.info("refused: %s", text.splitlines()[0] if text else "")
    return gr.Error(text, duration=None, print_exception=False)


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
                    RuntimeError(f"internal error ({type(exc).__name__}: {exc})"), service,
                    user_error=False,
                ) from None  # fmt: skip

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


# ----------------------------------------------------------------------------- tabs


def add_leaderboard_tabs(service: LeaderboardService, exports: ExportFolder | None = None) -> None:
    """Create the Leaderboard, Submit and (where a maintainer is configured,
    `maintainers_configured`) Maintainers tabs inside an open `gr.Tabs()`; `exports`: where
    CSV/JSON exports are written for a moment (default: a folder in the system temp
    folder)."""
    from leaderboard.ui_board import leaderboard_tab

    leaderboard_tab(service, exports or ExportFolder(), _guard(service), _authorizer(service),
                    maintainers_configured(service), _on_load, split_note)  # fmt: skip
    _submit_tab(service)
    if maintainers_configured(service):
        _maintainers_tab(service)


def maintainers_configured(service: LeaderboardService) -> bool:
    """Whether anyone can sign in as a maintainer: a token (SVR_ADMIN_TOKEN), or on a Space
    with Hugging Face login an allow-list (SVR_ADMINS)."""
    settings = service.settings
    oauth = use_oauth(settings.on_space, settings.oauth_configured)
    return bool(settings.admin_token) or (oauth and bool(settings.admins))


def _authorizer(service: LeaderboardService) -> Callable[..., str | None]:
    """(token, profile, request) -> the maintainer's name; None when neither a token nor
    (with Hugging Face login) a profile is given; AuthError when they are refused."""
    oauth = use_oauth(service.settings.on_space, service.settings.oauth_configured)

    def authorize(token: str, profile: Any, request: gr.Request | None) -> str | None:
        if not token and not (oauth and profile is not None):
            return None
        client = _client(request, service.settings.on_space)
        return service.authorize(token=token or None, profile=profile if oauth else None,
                                 client=client)  # fmt: skip

    return authorize


def _rows(frame: Any) -> bool:
    """Whether a Dataframe's value (a DataFrame, or its serialised dict) has rows."""
    if isinstance(frame, pd.DataFrame):
        return not frame.empty
    return bool(frame.get("data")) if isinstance(frame, dict) else False


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

    uploads: dict[str, dict[str, str]] = {}  # browser session -> public id -> upload name

    def remember(request: gr.Request | None, public_id: str | None, archive: str) -> str | None:
        """Keep the archive's name as submitted (cleaned) for this session's "My submissions"
        (rows since revision 0005 store it too: `upload_name`; this covers older ones)."""
        upload_name = clean_upload_name(archive)
        session = getattr(request, "session_hash", None)
        if session and public_id and upload_name:
            if session not in uploads and len(uploads) >= _SESSIONS_KEPT:
                uploads.pop(next(iter(uploads)))  # the oldest session
            uploads.setdefault(session, {})[public_id] = upload_name
        return upload_name

    def names_of(request: gr.Request | None) -> dict[str, str]:
        return uploads.get(getattr(request, "session_hash", None) or "", {})

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
            # Gradio's temporary file keeps the upload's name; `submit` keeps its base name
            sid = service.submit(
                archive, metadata, who(name, profile), key=key, client=client, upload_name=archive
            )
            return service.public_id(sid)
        except SubmissionRejected as exc:
            upload_name = remember(request, exc.public_id, archive)
            message = service.public_message(str(exc))
            raise gr.Error(name_as_submitted(message, upload_name), duration=None) from None
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
            sid = service.submit(
                archive, metadata, submitter, key=key, client=client, upload_name=archive
            )
            public = service.public_id(sid)
            remember(request, public, archive)
            message = (
                f"Submission {public} accepted and queued for scoring (keep this id: "
                "`/submission_status` answers with it). Its place in the queue and its "
                "progress show in My submissions below and on the Leaderboard tab."
            )
        except SubmissionRejected as exc:
            upload_name = remember(request, exc.public_id, archive)
            details = "\n".join(f"- {d}" for d in exc.details[:30])
            message = service.public_message(f"**{exc.reason}**\n\n{details}")
            message = name_as_submitted(message, upload_name) + (
                "\n\nFix what this names and submit again: failed submissions do not count "
                "towards the daily limit."
            )
        finally:
            discard_upload(archive, settings.uploads_dir)  # stored or refused: not needed
        return message, service.submissions_of(submitter, key, names_of(request))

    @guard
    def status(submission_id: str) -> dict[str, Any]:
        return service.status(str(submission_id or "").strip())

    @guard
    def mine(name: str, key: str = "", profile: gr.OAuthProfile | None = None,
             request: gr.Request = None) -> pd.DataFrame:  # type: ignore[assignment]  # fmt: skip
        try:
            submitter = who(name, profile)
        except gr.Error:
            return service.submissions_of("")
        return service.submissions_of(submitter, key, names_of(request))

    def mine_note(frame: Any, name: str) -> tuple[Any, str]:
        if _rows(frame):
            return gr.Column(visible=True), ""
        if on_space:
            return gr.Column(visible=False), "Log in to see your submissions here."
        if not (name or "").strip():
            return gr.Column(visible=False), (
                "Type your submitter name above to see your submissions here."
            )
        return gr.Column(visible=False), "No submissions under this name yet."

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
        gr.Markdown("### My submissions")
        my_note = gr.Markdown("Type your submitter name above to see your submissions here.")
        with gr.Column(visible=False) as my_box:
            my_table = gr.Dataframe(
                label="My submissions: status, place in the queue, items scored, score, reasons",
                interactive=False, wrap=True,
                datatype=["str"] * 5 + ["markdown"] + ["str"] * 3,
            )  # fmt: skip
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
        my_table.change(mine_note, [my_table, name], [my_box, my_note],
                        api_visibility="private", show_progress="hidden")  # fmt: skip

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
              ) -> tuple[str, Any]:  # fmt: skip
        """A refusal or a bad input is a sentence; the table is left as it was."""
        try:
            actor = actor_of(token, profile, request)
        except AuthError as exc:
            return f"**Refused.** {service.public_message(str(exc))}", gr.skip()
        try:
            numbers = [int(x) for x in ids.replace(",", " ").split()]
        except ValueError:
            return "Submission ids: numbers separated by commas or spaces.", gr.skip()
        if not numbers:
            return "Enter at least one submission id (the ID column of the table).", gr.skip()
        try:
            lines = service.admin_action(action, numbers, actor)
        except ServiceError as exc:
            return f"**Not done.** {service.public_message(exc.reason)}", gr.skip()
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
        with gr.Column(visible=False) as box:
            everything = gr.Dataframe(label="All submissions", interactive=False, wrap=True)
        # A refusal is a message (toast or sentence), never "Error" over the table.
        go.click(apply, [token, ids, action], [result, everything], api_visibility="private",
                 show_progress="hidden")  # fmt: skip
        list_btn.click(show_all, token, everything, api_visibility="private",
                       show_progress="hidden")  # fmt: skip
        everything.change(lambda f: gr.Column(visible=_rows(f)), everything, box,
                          api_visibility="private", show_progress="hidden")  # fmt: skip
