"""Time from `python app.py` to its first HTTP 200, against a bare Gradio app in the same run.

    python benchmarks/bench_startup.py --benchmark /tmp/svr-tiny2 [--rounds 3] [--repo DIR]
        [--before DIR] [--prepare 1]
    python benchmarks/bench_startup.py --preset small ...   # a true first start: it builds

Each round starts, on a free loopback port with an empty SVR_HOME: (1) a reference, a
one-Markdown `gr.Blocks` launched the same way (what importing and starting Gradio costs),
and (2) `python app.py` of `--repo` (default: this checkout) with SVR_BENCHMARK set, so
nothing is built; with `--before DIR` (an older commit unpacked, e.g. `git archive REV | tar
-x -C DIR`) also that version's app.py, in the same round. With `--preset NAME` instead of
`--benchmark`, SVR_BENCHMARK is left unset: the app builds that preset in the background, as
on a true first start (each run is stopped at its first 200). It prints the
median seconds to the first 200 on "/" of each, their ratio (app / bare Gradio: under load
both slow down alike), how long the console stayed silent after the start, the app's own
stage lines ("code loaded in", "leaderboard ready in", "interface built in") and
whether any Alembic "setup plugin" line or traceback reached the console.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BARE = """
import gradio as gr
with gr.Blocks() as demo:
    gr.Markdown("bare")
demo.launch(server_name="127.0.0.1", server_port={port})
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_time(cmd: list[str], cwd: Path, env: dict[str, str], port: int, log: Path,
                timeout: float) -> tuple[float, float | None]:  # fmt: skip
    """(seconds to the first 200 on "/", seconds to the first console line or None)."""
    start = time.monotonic()
    first_line: float | None = None
    with open(log, "wb") as out:
        proc = subprocess.Popen(  # its own process group: build workers are stopped with it
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        while time.monotonic() - start < timeout:
            if first_line is None and log.stat().st_size > 0:
                first_line = time.monotonic() - start
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[-1]} exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - start, first_line
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"no answer within {timeout:.0f} s:\n{log.read_text()[-2000:]}")
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group `proc` leads, SIGKILL it after 15 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(15)
    except ProcessLookupError:
        pass
    try:  # workers that outlived it
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _app_env(env: dict[str, str], home: Path, benchmark: Path | None, preset: str | None,
             prepare: str, port: int) -> dict[str, str]:  # fmt: skip
    env = {k: v for k, v in env.items() if k not in ("SVR_BENCHMARK", "SVR_PRESET")}
    env.update(
        SVR_HOME=str(home / "home"), SVR_TMP=str(home / "sessions"),
        SVR_EXAMPLES=str(home / "examples"), SVR_PREPARE=prepare,
        GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port),
    )  # fmt: skip
    if benchmark is not None:
        env["SVR_BENCHMARK"] = str(benchmark.resolve())
    if preset:
        env["SVR_PRESET"] = preset
    return env


def _start_app(repo: Path, benchmark: Path | None, preset: str | None, env: dict[str, str],
               home: Path, prepare: str, timeout: float) -> tuple[float, float | None]:  # fmt: skip
    """`python app.py` of `repo` on an empty `home`: (seconds to the first 200, to the first
    console line)."""
    port = _free_port()
    env = _app_env(env, home, benchmark, preset, prepare, port)
    home.mkdir(parents=True, exist_ok=True)
    return _serve_time([sys.executable, "app.py"], repo, env, port, home / "app.log", timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--benchmark", type=Path, help="a built benchmark")
    where.add_argument("--preset", help="build this preset, as a first start does")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose app.py runs")
    parser.add_argument("--before", type=Path, default=None, help="older checkout to compare")
    parser.add_argument("--prepare", default="1", help="SVR_PREPARE for the app (default 1)")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    app_times, bare_times, silences, before_times, before_silences = [], [], [], [], []
    stages: list[str] = []
    noise = []
    with tempfile.TemporaryDirectory(prefix="svr-startup-") as tmp:
        root = Path(tmp)
        for r in range(args.rounds):
            env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
            env.update(GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
            port = _free_port()
            bare, _ = _serve_time(
                [sys.executable, "-c", BARE.format(port=port)], root, env, port,
                root / f"bare{r}.log", args.timeout,
            )  # fmt: skip
            if args.before is not None:
                before, before_silent = _start_app(
                    args.before, args.benchmark, args.preset, env, root / f"b{r}", args.prepare,
                    args.timeout,
                )  # fmt: skip
                before_times.append(before)
                before_silences.append(before if before_silent is None else before_silent)
            home = root / f"round{r}"
            took, silent = _start_app(
                args.repo, args.benchmark, args.preset, env, home, args.prepare, args.timeout
            )
            log = home / "app.log"
            text = log.read_text()
            app_times.append(took)
            bare_times.append(bare)
            silences.append(silent if silent is not None else took)
            stages = re.findall(r"(code loaded in [\d.]+ s|leaderboard ready in [\d.]+ s|"
                                r"interface built in [\d.]+ s)", text)  # fmt: skip
            noise.append(
                (text.count("setup plugin"), text.count("Traceback (most recent call last)"))
            )
            print(f"round {r + 1}: app {took:.1f} s, bare Gradio {bare:.1f} s, "
                  f"first console line after {silences[-1]:.1f} s", flush=True)  # fmt: skip
    app_med, bare_med = statistics.median(app_times), statistics.median(bare_times)
    print(f"app.py ({args.repo}) to first HTTP 200: median {app_med:.1f} s "
          f"(runs {', '.join(f'{t:.1f}' for t in app_times)})")  # fmt: skip
    if before_times:
        before_med = statistics.median(before_times)
        print(f"app.py ({args.before}) to first HTTP 200: median {before_med:.1f} s "
              f"(runs {', '.join(f'{t:.1f}' for t in before_times)}); now / before: "
              f"{app_med / before_med:.2f}; its console silent after start: median "
              f"{statistics.median(before_silences):.1f} s")  # fmt: skip
    print(f"bare Gradio Blocks to first HTTP 200: median {bare_med:.1f} s")
    print(f"ratio app / bare Gradio: {app_med / bare_med:.2f}")
    print(f"console silent after start: median {statistics.median(silences):.1f} s")
    print(f"last run's stages: {'; '.join(stages) or '(none logged)'}")
    print(f"alembic 'setup plugin' lines, tracebacks per run: {noise}")
    try:
        print(f"load average: {os.getloadavg()[0]:.1f}")
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
