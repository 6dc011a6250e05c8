"""The commands that hand a diagnosis to someone else: `annotate` (a pcapng Wireshark
explains) and `report` (one HTML page). Registered on the command group in cli.py."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO, TypeVar

import click

from .env import Environment
from .errors import ExitStatus, RstdiagError

T = TypeVar("T")

ANNOTATE_EXIT_STATUS_HELP = (
    "Exit status: 0 written, 2 usage error, unreadable capture or output not writable, "
    "130 interrupted (nothing is written)."
)
REPORT_EXIT_STATUS_HELP = (
    "Exit status: 0 written, 2 usage error, a capture that cannot be read (the page covers "
    "the others) or output not writable, 130 interrupted (nothing is written)."
)


@click.command(epilog=ANNOTATE_EXIT_STATUS_HELP)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-w", "--write", "output", required=True, type=click.Path(dir_okay=False),
              metavar="OUT.pcapng", help="The annotated capture to write (pcapng).")
@click.option("--max-flows", type=click.IntRange(min=1000), default=None,
              help="Flows held in memory at once (default 200000).")
def annotate(file: str, output: str, max_flows: int | None) -> None:
    """Write FILE back as pcapng with every packet unchanged and a comment on each RST: its
    cause, confidence, sender, evidence and hint, for Wireshark (packet details, Expert Info,
    the filter frame.comment contains "half-open")."""
    raise SystemExit(int(run_annotate(Environment.from_system(), file, output,
                                      max_flows=max_flows)))


def run_annotate(env: Environment, path: str, output: str, *,
                 max_flows: int | None = None) -> ExitStatus:
    from .analysis import analyze_file
    from .annotate import annotate as write_annotated
    from .annotate import comments_of

    if path == "-":
        env.error("annotate reads FILE twice (the verdicts, then the packets): give a file, "
                  "not standard input")
        return ExitStatus.ERROR
    if _same_file(path, output):
        env.error(f"{output}: is the input capture; write the annotated copy elsewhere")
        return ExitStatus.ERROR
    try:
        report = analyze_file(path, max_flows)
        for warning in report.warnings:
            env.warn(f"{path}: {warning}")
        comments = comments_of(report.verdicts)
        done = _write_atomically(
            output, lambda out: write_annotated(path, out, comments, report.frames))
    except RstdiagError as exc:
        env.error(f"{path}: {exc}")
        return ExitStatus.ERROR
    except OSError as exc:
        env.error(f"{exc.filename or path}: {exc.strerror or exc}")
        return ExitStatus.ERROR
    except KeyboardInterrupt:
        env.warn(f"{path}: interrupted; nothing written")
        return ExitStatus.INTERRUPTED
    for warning in done.warnings:
        env.warn(f"{path}: {warning}")
    summary = ", ".join(f"{label} {n}" for label, n in report.summary().items())
    env.stdout.write(f"{output}: {done.frames} frames from {path} ({done.format}), "
                     f"{_rsts(done.commented)} commented{f': {summary}' if summary else ''}\n")
    env.stdout.flush()
    return ExitStatus.OK


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _write_atomically(path: str, write: Callable[[BinaryIO], T]) -> T:
    """Run `write(binary file)` on a temporary file beside `path`, then put it in place: an
    error or Ctrl-C leaves no half-written file behind."""
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb", buffering=1 << 20) as out:
            result = write(out)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    return result


@click.command(epilog=REPORT_EXIT_STATUS_HELP)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              metavar="REPORT.html", help="The page to write.")
def report(files: tuple[str, ...], output: str) -> None:
    """Placeholder replaced below."""


def _rsts(count: int) -> str:
    return "1 RST" if count == 1 else f"{count} RSTs"
