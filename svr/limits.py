"""Resource limits of the web server: request bodies, the upload folder, freed memory.

- `RequestLimits`: a plain ASGI middleware (no framework import) that refuses a request
  whose body is larger than its cap with 413 and a message saying what to do: multipart
  uploads (Gradio's `/upload`) up to `max_upload_bytes` plus a little form overhead, every
  other body (JSON API calls, which may carry `data:` URLs) up to `max_body_bytes`. The cap
  is checked on the Content-Length header and again on the bytes actually received. It also
  keeps Gradio's upload folder bounded: stale uploads (older than `upload_ttl_s`) are swept
  at most once a minute, and an upload that would take the folder over `upload_cap_bytes` is
  refused with 507.
- `sweep_uploads(folder, ttl_s)`: remove uploads not touched for `ttl_s` seconds.
- `discard_upload(path, folder)`: remove one uploaded file (and its folder when empty), only
  if it lies inside `folder`.
- `release_memory()`: give freed heap memory back to the system (glibc `malloc_trim`); call
  after a request that allocated a lot.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

__all__ = ["RequestLimits", "discard_upload", "folder_size", "release_memory", "sweep_uploads"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_FORM_OVERHEAD = 1 << 20  # multipart boundaries and fields around the uploaded file(s)
_SWEEP_EVERY_S = 60.0
_DRAIN_MAX = 256 << 20  # a refused body is read (and dropped) up to this many bytes
_MB = 1 << 20

# ----------------------------------------------------------------------------- memory

_LIBC: Any = None
_LIBC_LOCK = threading.Lock()


def release_memory() -> bool:
    """Return freed heap memory to the operating system (glibc's `malloc_trim(0)`).

    Large arrays freed by Python stay in glibc's heap otherwise and the process's RSS does
    not come back down. Returns False where glibc is not available (no-op).
    """
    global _LIBC
    with _LIBC_LOCK:
        if _LIBC is None:
            name = ctypes.util.find_library("c")
            try:
                libc = ctypes.CDLL(name or "libc.so.6")
                _LIBC = libc if hasattr(libc, "malloc_trim") else False
            except OSError:
                _LIBC = False
        if not _LIBC:
            return False
        _LIBC.malloc_trim(0)
    return True


# ----------------------------------------------------------------------------- uploads


def folder_size(folder: str | os.PathLike) -> int:
    """Bytes of the regular files under `folder` (0 if it does not exist)."""
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def sweep_uploads(folder: str | os.PathLike, ttl_s: float, now: float | None = None) -> int:
    """Remove files under `folder` not modified for `ttl_s` seconds, and folders left empty;
    returns the bytes freed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    now = time.time() if now is None else now
    freed = 0
    for dirpath, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                info = os.lstat(path)
                if now - info.st_mtime >= ttl_s:
                    os.unlink(path)
                    freed += info.st_size
            except OSError:
                pass
        for name in dirs:
            try:
                os.rmdir(os.path.join(dirpath, name))  # only succeeds when empty
            except OSError:
                pass
    if freed:
        logger.info("uploads: swept %.1f MB older than %.0f s", freed / 1e6, ttl_s)
    return freed


def discard_upload(path: str | os.PathLike | None, folder: str | os.PathLike) -> bool:
    """Delete an uploaded file once it is no longer needed (e.g. a submission archive after
    it was stored or refused), and its per-upload folder when empty. Paths outside `folder`
    are never touched. Returns True if a file was removed."""
    if not path:
        return False
    target = Path(os.path.abspath(path))
    root = Path(os.path.abspath(folder))
    if root not in target.parents or not target.is_file() or target.is_symlink():
        return False
    try:
        target.unlink()
    except OSError:
        return False
    parent = target.parent
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
    return True


# ----------------------------------------------------------------------------- middleware


class _TooLarge(Exception):
    pass


class RequestLimits:
    """ASGI middleware bounding request bodies and Gradio's upload folder (module docstring).

    Args:
        app: the wrapped ASGI application.
        max_body_bytes: cap of a request body that is not a multipart upload.
        max_upload_bytes: cap of a multipart body (the upload size limit).
        upload_dir: Gradio's upload folder (None: no folder checks).
        upload_cap_bytes: most bytes the upload folder may hold before uploads are refused.
        upload_ttl_s: age in seconds after which an upload is swept.
    """

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        max_body_bytes: int,
        max_upload_bytes: int,
        upload_dir: str | os.PathLike | None = None,
        upload_cap_bytes: int | None = None,
        upload_ttl_s: float = 3600.0,
    ):
        self.app = app
        self.max_body = max_body_bytes
        self.max_upload = max_upload_bytes + _FORM_OVERHEAD
        self.upload_dir = None if upload_dir is None else Path(upload_dir)
        self.upload_cap = upload_cap_bytes
        self.upload_ttl_s = upload_ttl_s
        self._swept = 0.0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        multipart = headers.get("content-type", "").startswith("multipart/form-data")
        cap = self.max_upload if multipart else self.max_body
        try:
            declared = int(headers.get("content-length", "") or -1)
        except ValueError:
            declared = -1
        if declared > cap:
            await _drain(receive)
            await _refuse(send, 413, self._too_large(declared, multipart))
            return
        if multipart and self.upload_dir is not None:
            full = self._folder_full(max(declared, 0))
            if full:
                await _drain(receive)
                await _refuse(send, 507, full)
                return
        await self._forward(scope, receive, send, cap, multipart)
        if declared > 4 * _MB or multipart:
            release_memory()

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, cap: int, multipart: bool
    ) -> None:
        received = 0
        started = False
        refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    refused = True
                    if not started:
                        if message.get("more_body", False):
                            await _drain(receive)
                        await _refuse(send, 413, self._too_large(received, multipart, True))
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message.get("type") == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _TooLarge:
            logger.info("refused a request body over %d bytes (%s)", cap, scope.get("path"))
        except Exception:
            if not refused:
                raise

    def _too_large(self, size: int, multipart: bool, at_least: bool = False) -> str:
        amount = f"{'more than ' if at_least else ''}{size / _MB:.1f} MB"
        if multipart:
            most = (self.max_upload - _FORM_OVERHEAD) / _MB
            return f"upload too large: {amount}; at most {most:.0f} MB per upload"
        return (
            f"request body too large: {amount}; at most {self.max_body / _MB:.0f} MB. Send "
            "images and archives as file uploads (the API's handle_file), not inline data: URLs"
        )

    def _folder_full(self, incoming: int) -> str:
        """A refusal message when the upload folder cannot take `incoming` more bytes."""
        if self.upload_dir is None:
            return ""
        with self._lock:
            now = time.monotonic()
            if now - self._swept >= _SWEEP_EVERY_S:
                self._swept = now
                sweep_uploads(self.upload_dir, self.upload_ttl_s)
            if self.upload_cap is None:
                return ""
            used = folder_size(self.upload_dir)
            if used + incoming <= self.upload_cap:
                return ""
        free = shutil.disk_usage(self.upload_dir).free if self.upload_dir.is_dir() else 0
        logger.warning(
            "upload folder full: %d of %d bytes (disk free %d)", used, self.upload_cap, free
        )
        return (
            "the server's upload space is full right now; try again in a few minutes "
            "(uploads are kept for at most an hour)"
        )


async def _drain(receive: Receive) -> None:
    """Read and drop the rest of a refused body (at most `_DRAIN_MAX` bytes), so that the
    client reads the refusal instead of a reset connection."""
    drained = 0
    while drained <= _DRAIN_MAX:
        message = await receive()
        if message.get("type") != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message, "detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
