"""The command line: a thin click layer over rstdiag.analysis and rstdiag.render."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import click

from . import __version__
from .errors import ExitStatus, RstdiagError
from .env import Environment

EXIT_STATUS_HELP = (
    "Exit status: 0 done, 1 check found RSTs over the limit, 2 usage error or unreadable "
    "capture, 130 interrupted (the summary of what was read is still printed)."
)


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The output options every command that prints verdicts shares."""
    options = [
        click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl", "csv"]),
                     default="table", show_default=True,
                     help="table for people; json (one document), jsonl (one verdict per line) "
                     "or csv (header first) for machines."),
        click.option("-q", "--quiet", is_flag=True, help="Table: print the summary only."),
        click.option("-v", "--verbose", count=True,
                     help="Table: also show identical copies of RSTs."),
        click.option("--color/--no-color", default=None,
                     help="Colour the table (default: when stdout is a terminal)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_STATUS_HELP)
@click.version_option(__version__, prog_name="rstdiag")
def cli() -> None:
    """Who sent that TCP RST, and why? rstdiag labels every RST in a capture with its cause,
    the evidence, and what to do about it."""


@cli.command(epilog=EXIT_STATUS_HELP)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False,
                                                                  allow_dash=True))
@output_options
@click.option("--max-flows", type=click.IntRange(min=1000), default=None,
              help="Flows held in memory at once (default 200000); the oldest idle are "
              "evicted beyond it, and counted.")
def read(files: tuple[str, ...], fmt: str, quiet: bool, verbose: int, color: bool | None,
         max_flows: int | None) -> None:
    """Read pcap/pcapng FILES ('-' for standard input) and explain every TCP RST.

    Causes: closed-port, accept-overflow, linger-abort, unread-data, data-after-close,
    half-open, keepalive-timeout, injected, client-abort, follow-up, unknown.
    """
    env = Environment.from_system()
    status = run_read(env, files, fmt=fmt, quiet=quiet, verbose=verbose, color=color,
                      max_flows=max_flows)
    raise SystemExit(int(status))


def run_read(env: Environment, files: tuple[str, ...], *, fmt: str, quiet: bool = False,
             verbose: int = 0, color: bool | None = None,
             max_flows: int | None = None) -> ExitStatus:
    from .analysis import Analysis, FileReport
    from .render import write_csv, write_json, write_jsonl, write_table

    reports: list[FileReport] = []
    status = ExitStatus.OK
    for path in files:
        analysis = Analysis(path, max_flows)
        try:
            with _progress(env, path) as progress:
                report = analysis.run(progress)
        except RstdiagError as exc:
            env.error(f"{path}: {exc}")
            status = ExitStatus.ERROR
            continue
        except KeyboardInterrupt:
            reports.append(analysis.finish(complete=False))
            env.warn(f"{path}: interrupted; reporting what was read")
            status = ExitStatus.INTERRUPTED
            break
        for warning in report.warnings:
            env.warn(f"{path}: {warning}")
        reports.append(report)
    writers = {"json": write_json, "jsonl": write_jsonl, "csv": write_csv}
    if not reports:
        return status
    try:
        if fmt in writers:
            writers[fmt](reports, env.stdout)
        else:
            use_color = env.stdout_isatty if color is None else color
            write_table(reports, env.stdout, color=use_color, verbose=verbose, quiet=quiet,
                        width=None if env.stdout_isatty else 160)
        env.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    return status


class _progress:
    """A progress bar on stderr for big files on a terminal; nothing otherwise."""

    THRESHOLD = 64 * 1024 * 1024

    def __init__(self, env: Environment, path: str) -> None:
        import os

        self.bar = None
        size = os.path.getsize(path) if path != "-" and os.path.isfile(path) else 0
        if env.stderr_isatty and size >= self.THRESHOLD:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

            self.bar = Progress("[progress.description]{task.description}", BarColumn(),
                                DownloadColumn(), TimeRemainingColumn(),
                                console=Console(file=env.stderr), transient=True)
            self.task = self.bar.add_task(os.path.basename(path), total=size)

    def __enter__(self) -> Callable[[int], None] | None:
        if self.bar is None:
            return None
        self.bar.start()
        bar, task = self.bar, self.task
        return lambda done: bar.update(task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _silence_stdout() -> None:
    """The reader went away (| head): exit quietly, without Python's flush error at exit."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    cli(prog_name="rstdiag")
