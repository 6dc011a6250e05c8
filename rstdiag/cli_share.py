"""The commands that hand a diagnosis to someone else: `annotate` (a pcapng Wireshark
explains) and `report` (one HTML page). Registered on the command group in cli.py."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, TypeVar

import click

from .env import Environment
from .errors import ExitStatus, RstdiagError

if TYPE_CHECKING:
    from .analysis import FileReport

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
              help="Flows held in memory at once (default 65536).")
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
    except (RstdiagError, OSError, KeyboardInterrupt) as exc:
        return failure(env, exc, capture=path, file=path,
                       interrupted="interrupted; nothing written")
    for warning in done.warnings:
        env.warn(f"{path}: {warning}")
    summary = ", ".join(f"{label} {n}" for label, n in report.summary().items())
    env.stdout.write(f"{output}: {done.frames} frames from {path} ({done.format}), "
                     f"{_rsts(done.commented)} commented{f': {summary}' if summary else ''}\n")
    env.stdout.flush()
    return ExitStatus.OK


def failure(env: Environment, exc: BaseException, *, capture: str | None, file: str,
            interrupted: str) -> ExitStatus:
    """The one line and the exit status of a command stopped by `exc`: a capture it cannot
    read (named after `capture`, if given), a file it cannot read or write (named after the
    error's own file, else `file`), or Ctrl-C (`interrupted`: what became of the output)."""
    if isinstance(exc, KeyboardInterrupt):
        env.warn(f"{capture}: {interrupted}" if capture else interrupted)
        return ExitStatus.INTERRUPTED
    if isinstance(exc, OSError):
        env.error(f"{exc.filename or file}: {exc.strerror or exc}")
        return ExitStatus.ERROR
    env.error(f"{capture}: {exc}" if capture else str(exc))
    return ExitStatus.ERROR


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
              metavar="REPORT.html", help="The page to write (one self-contained HTML file).")
@click.option("--ladders", "per_cause", type=click.IntRange(min=0), default=3,
              show_default=True, metavar="N",
              help="Ladder diagrams of the first N RSTs of each cause, each on its own flow.")
@click.option("--max-rows", type=click.IntRange(min=1), default=5000, show_default=True,
              metavar="N", help="RSTs listed in the table (all are counted).")
@click.option("--max-flows", type=click.IntRange(min=1000), default=None,
              help="Flows held in memory at once (default 65536).")
def report(files: tuple[str, ...], output: str, per_cause: int, max_rows: int,
           max_flows: int | None) -> None:
    """Write one self-contained HTML page about the RSTs of FILES, to attach to a ticket or a
    postmortem: the summary by cause and by server, a chart of RSTs over time, the table of
    RSTs (filterable by cause) and ladder diagrams of the first RSTs of each cause."""
    raise SystemExit(int(run_report(Environment.from_system(), files, output,
                                    per_cause=per_cause, max_rows=max_rows,
                                    max_flows=max_flows)))


def run_report(env: Environment, files: tuple[str, ...], output: str, *, per_cause: int = 3,
               max_rows: int = 5000, max_flows: int | None = None) -> ExitStatus:
    from .report import build_page, ladder_choices, ladders_of, render_page

    if "-" in files:
        env.error("report reads each FILE twice (the verdicts, then the ladders' packets): "
                  "give files, not standard input")
        return ExitStatus.ERROR
    try:
        reports, errors = _analyze_all(env, files, max_flows)
    except KeyboardInterrupt:
        env.warn("interrupted; nothing written")
        return ExitStatus.INTERRUPTED
    try:
        chosen = ladder_choices((v for r in reports for v in r.verdicts), per_cause)
        ladders = [ladder for r in reports
                   for ladder in ladders_of(r, [v for v in chosen if v.file == r.path])]
        html = render_page(build_page(reports, errors, ladders=ladders, max_rows=max_rows))
        _write_atomically(output, lambda out: out.write(html.encode("utf-8")))
    except (RstdiagError, OSError, KeyboardInterrupt) as exc:
        return failure(env, exc, capture=None, file=output,
                       interrupted="interrupted; nothing written")
    total = sum(len(r.verdicts) for r in reports)
    env.stdout.write(f"{output}: {_rsts(total)} from {len(reports)} of {len(files)} "
                     f"captures, {len(ladders)} ladders\n")
    env.stdout.flush()
    return ExitStatus.ERROR if errors else ExitStatus.OK


def _analyze_all(env: Environment, files: tuple[str, ...], max_flows: int | None
                 ) -> tuple[list[FileReport], list[tuple[str, str]]]:
    """Every capture's whole report (the page needs all its verdicts), and the (path, error
    line) of those that could not be read, each told on stderr as it comes."""
    from .analysis import analyze_path

    reports: list[FileReport] = []
    errors: list[tuple[str, str]] = []
    for path in files:
        report, message = analyze_path(path, max_flows)
        if message is not None:
            env.error(f"{path}: {message}")
            errors.append((path, message))
        if report is None:
            continue
        for warning in report.warnings:
            env.warn(f"{path}: {warning}")
        reports.append(report)
    return reports, errors


def _rsts(count: int) -> str:
    return "1 RST" if count == 1 else f"{count} RSTs"
