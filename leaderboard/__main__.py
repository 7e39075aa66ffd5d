"""Command line of the leaderboard: `python -m leaderboard <command> ...`.

    score ARCHIVE --benchmark DIR [--device cpu|cuda] [--json OUT]
        validate and score a submission; print a per-class table; write the scores as JSON.
    template (--benchmark DIR | --inputs test-inputs.zip) --out example.zip
             [--representation voxels|mesh|points]
        write a valid example submission (the same sphere for every test item).
    worker [--once] [--benchmark DIR]
        score queued submissions of the leaderboard database (SVR_HOME / DATABASE_URL).
    report [--benchmark DIR] [--out FILE.md] [--figures DIR]
        the leaderboard as Markdown: entries, per-class F@1% and IoU, tests against baselines.
    keys add NAME [--replace] | keys list | keys revoke NAME
        per-submitter keys (for SVR_REQUIRE_KEYS=1): add prints a new key once (only its
        hash is stored); list shows names and dates; revoke disables a name's key.

Commands are registered in `COMMANDS` (name -> Command): adding one is one line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from leaderboard.worker import add_worker_arguments, run_worker_command


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, a function adding its arguments, and its runner
    (returns the exit code)."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _add_score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("archive", type=Path, help=".zip, .tar, .tar.gz/.tgz or .npz submission")
    parser.add_argument("--benchmark", type=Path, required=True, help="benchmark folder")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="write the scores to this JSON file"
    )
    parser.add_argument("--scratch", type=Path, default=None, help="folder for temporary files")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds; stop after this")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _print_table(scores: object) -> None:
    from leaderboard.scoring import SubmissionScores

    if not isinstance(scores, SubmissionScores):  # pragma: no cover - internal
        raise TypeError("SubmissionScores expected")
    head = scores.headline
    label = f"F@{float(head.split('@')[1]) * 100:g}%"
    rows = [("class", "n", label, "IoU", "Chamfer-L1")]
    for cls, metrics in scores.per_class.items():
        rows.append(
            (
                cls,
                str(scores.class_counts[cls]["n"]),
                _fmt(metrics[head]["mean"]),
                _fmt(metrics["iou"]["mean"]),
                _fmt(metrics["chamfer_l1"]["mean"], 4),
            )
        )
    for name, metrics in scores.overall.items():
        n = str(scores.coverage["n_items"])
        rows.append(
            (name, n, _fmt(metrics[head]), _fmt(metrics["iou"]), _fmt(metrics["chamfer_l1"], 4))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for k, row in enumerate(rows):
        if k in (1, len(rows) - len(scores.overall)):
            print("  ".join("-" * w for w in widths))
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    cov = scores.coverage
    print(
        f"coverage {cov['fraction']:.3f}: {cov['n_present']} of {cov['n_items']} items present, "
        f"{cov['n_missing']} missing, {cov['n_empty']} empty (missing and empty score worst values)"
    )
    print(f"benchmark {scores.benchmark}, protocol {scores.protocol}, {scores.elapsed_s:.1f} s")


def _run_score(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from leaderboard.archive import SubmissionError, open_submission
    from leaderboard.scoring import ScoringTimeout, score_submission
    from svr.data.layout import Benchmark
    from svr.io import atomic_write_bytes

    benchmark = Benchmark(args.benchmark)
    try:
        with open_submission(args.archive, benchmark, scratch=args.scratch) as parsed:
            print(
                f"{args.archive.name}: method {parsed.manifest.method!r}, "
                f"{parsed.manifest.representation}, {len(parsed.present)} of "
                f"{len(parsed.test_ids)} test items present"
            )
            with tqdm(total=len(parsed.test_ids), unit="item", desc="scoring") as bar:

                def progress(done: int, total: int) -> None:
                    bar.update(done - bar.n)

                scores = score_submission(
                    parsed, benchmark, device=args.device, progress=progress,
                    time_limit_s=args.time_limit,
                )  # fmt: skip
    except SubmissionError as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        for line in exc.details:
            print(f"  - {line}", file=sys.stderr)
        return 2
    except ScoringTimeout as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    _print_table(scores)
    if args.json is not None:
        atomic_write_bytes(args.json, scores.to_json().encode())
        print(f"wrote {args.json}")
    return 0


def _add_template_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--benchmark", type=Path, help="benchmark folder")
    source.add_argument(
        "--inputs", type=Path, help="test inputs zip downloaded from the leaderboard"
    )
    parser.add_argument("--out", type=Path, required=True, help="the .zip to write")
    parser.add_argument("--representation", choices=("voxels", "mesh", "points"), default="voxels")


def _run_template(args: argparse.Namespace) -> int:
    from leaderboard.archive import write_template
    from svr.data.inputs import TestInputs
    from svr.data.layout import Benchmark

    if args.inputs is not None:
        with TestInputs(args.inputs) as inputs:
            manifest = write_template(inputs, args.out, args.representation)
            n = len(inputs.item_ids)
        print(f"wrote {args.out}: {n} items ({manifest.representation}) and submission.json")
        print("submit it on the leaderboard's Submit tab (or its /submit API)")
        return 0
    benchmark = Benchmark(args.benchmark)
    manifest = write_template(benchmark, args.out, args.representation)
    n = len(benchmark.items("test"))
    print(f"wrote {args.out}: {n} items ({manifest.representation}) and submission.json")
    print(f"score it with: python -m leaderboard score {args.out} --benchmark {args.benchmark}")
    return 0


def _add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--benchmark", type=Path, default=None,
        help="benchmark the entries were scored on (default: SVR_BENCHMARK or $SVR_HOME/benchmark)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="write here (default: print)")
    parser.add_argument(
        "--figures", type=Path, default=None,
        help="also write per_class.png and distributions.png here, linked from the report",
    )  # fmt: skip


def _run_report(args: argparse.Namespace) -> int:
    from leaderboard.report import markdown_report, write_figures
    from leaderboard.service import LeaderboardService
    from leaderboard.settings import LeaderboardSettings
    from svr.io import atomic_write_bytes
    from svr.settings import Settings

    settings = LeaderboardSettings.from_env()
    bench = args.benchmark or Settings.from_env().benchmark_dir
    service = LeaderboardService(settings, bench if bench.is_dir() else None)
    try:
        figures = None if args.figures is None else write_figures(service, args.figures)
        where = Path.cwd() if args.out is None else args.out.resolve().parent
        text = markdown_report(service, figures=figures, relative_to=where)
    finally:
        service.close()
    if args.out is None:
        print(text, end="")
    else:
        atomic_write_bytes(args.out, text.encode())
        print(f"wrote {args.out}")
    return 0


def _add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="keys_command", required=True)
    add = sub.add_parser("add", help="issue a key for a submitter name and print it")
    add.add_argument("name", help="the submitter name (as they will type it)")
    add.add_argument("--replace", action="store_true", help="replace the name's active key")
    sub.add_parser("list", help="list the names that have keys")
    revoke = sub.add_parser("revoke", help="revoke a submitter's key")
    revoke.add_argument("name")


def _run_keys(args: argparse.Namespace) -> int:
    from leaderboard.db import make_engine, make_session_factory, upgrade
    from leaderboard.errors import ServiceError
    from leaderboard.keys import add_key, list_keys, revoke_key
    from leaderboard.settings import LeaderboardSettings

    settings = LeaderboardSettings.from_env()
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        factory = make_session_factory(engine)
        if args.keys_command == "add":
            try:
                key = add_key(factory, args.name, replace=args.replace)
            except ServiceError as exc:
                print(f"error: {exc.reason}", file=sys.stderr)
                return 2
            print(key)
            print(f"key for {args.name.strip()!r}: give it to them privately; it is not shown "
                  "again (only its hash is stored)", file=sys.stderr)  # fmt: skip
            if not settings.keys_required:
                print("note: keys are checked only with SVR_REQUIRE_KEYS=1 (off a Space)",
                      file=sys.stderr)  # fmt: skip
            return 0
        if args.keys_command == "revoke":
            if not revoke_key(factory, args.name):
                print(f"error: {args.name.strip()!r} has no active key", file=sys.stderr)
                return 2
            print(f"revoked the key of {args.name.strip()!r}")
            return 0
        for info in list_keys(factory):
            state = "active" if info.active else f"revoked {info.revoked_at:%Y-%m-%d %H:%M}"
            print(f"{info.name}\tissued {info.created_at:%Y-%m-%d %H:%M}\t{state}")
        return 0
    finally:
        engine.dispose()


COMMANDS: dict[str, Command] = {
    "score": Command("validate and score a submission archive", _add_score_arguments, _run_score),
    "template": Command("write a valid example submission", _add_template_arguments, _run_template),
    "worker": Command(
        "score queued leaderboard submissions", add_worker_arguments, run_worker_command
    ),
    "report": Command("the leaderboard as Markdown", _add_report_arguments, _run_report),
    "keys": Command("per-submitter keys: add, list, revoke", _add_keys_arguments, _run_keys),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m leaderboard", description=__doc__.split("\n")[0]
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help, description=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
