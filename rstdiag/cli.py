"""The command line: a thin click layer over rstdiag.reading, rstdiag.render and the rest."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

import click

from . import __version__
from .cli_share import annotate, failure, report
from .env import Environment
from .errors import ExitStatus, RstdiagError

if TYPE_CHECKING:
    from .machine import Sink
    from .reading import ReadOptions
    from .select import Selection

READ_EXIT_STATUS_HELP = (
    "Exit status: 0 done, 2 usage error or unreadable capture, 130 interrupted (what was "
    "read is still reported)."
)
EXIT_STATUS_HELP = (
    "Exit status: 0 done, 1 check found RSTs over the limit, 2 usage error or unreadable "
    "capture, 130 interrupted (the summary of what was read is still printed)."
)
TIME_FLAGS = {0: "clock", 1: "none", 2: "epoch", 3: "delta", 4: "date", 5: "since-start"}


def _stack(func: Callable[..., Any], options: list[Callable[..., Any]]) -> Any:
    for option in reversed(options):
        func = option(func)
    return func


def output_options(func: Callable[..., Any] | None = None, *,
                   formats: tuple[str, ...] = ("table", "json", "jsonl", "csv"),
                   format_help: str = "table for people; json (one document), jsonl (one "
                   "verdict per line) or csv (header first) for machines.",
                   quiet_help: str = "Table: print the summary only.",
                   verbose_help: str = "Table: the evidence under each RST; -vv also the "
                   "identical copies of RSTs.") -> Any:
    """The output options every command that prints verdicts shares.

    `@output_options` gives those of `read`; `@output_options(formats=..., ...)` another
    command's format list and help texts.
    """
    if func is None:
        return lambda f: output_options(f, formats=formats, format_help=format_help,
                                        quiet_help=quiet_help, verbose_help=verbose_help)
    return _stack(func, [
        click.option("--format", "fmt", type=click.Choice(list(formats)),
                     default="table", show_default=True, help=format_help),
        click.option("-q", "--quiet", is_flag=True, help=quiet_help),
        click.option("-v", "--verbose", count=True, help=verbose_help),
        click.option("--color/--no-color", default=None,
                     help="Colour the table (default: on a terminal, unless NO_COLOR is set; "
                     "FORCE_COLOR colours a pipe)."),
        click.option("-t", "time_flags", count=True,
                     help="Time column as tcpdump's -t family: -t none, -tt seconds since the "
                     "epoch, -ttt since the previous RST, -tttt date and time, -ttttt since "
                     "the capture's first RST (default: time of day, UTC, the date on a line "
                     "of its own when it changes)."),
        click.option("--pager/--no-pager", default=None,
                     help="Page long tables on a terminal with $PAGER (default less -FRX), as "
                     "git does (default: on a terminal)."),
    ])


def reading_options(func: Callable[..., Any]) -> Any:
    """The options of the commands that read capture files: input, memory, parallelism."""
    return _stack(func, [
        click.option("-r", "--read-file", "read_files", multiple=True, metavar="FILE",
                     type=click.Path(allow_dash=True),
                     help="A capture to read, as tcpdump -r (the same as a FILE argument). "
                     "Repeatable."),
        click.option("-c", "--count", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Stop after N packets (over all the files), as tcpdump -c."),
        click.option("-f", "--filter", "bpf", metavar="EXPR",
                     help="Read only the packets this pcap-filter expression accepts, as "
                     "tcpdump -r FILE EXPR does (tcpdump applies it; frames are numbered "
                     "among those it passes)."),
        click.option("--max-flows", type=click.IntRange(min=1000), default=None,
                     help="Flows held in memory at once (default 65536); the oldest idle "
                     "are evicted beyond it, and counted."),
        click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Read up to N files at once, one engine thread each (default: one "
                     "per CPU core); the output is in the order given."),
    ])


def _selection_callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    from .select import (
        SelectError,
        parse_causes,
        parse_hosts,
        parse_ports,
        parse_senders,
        parse_time,
    )

    try:
        if param.name == "causes":
            return None if value is None else parse_causes(value)
        if param.name == "senders":
            return None if value is None else parse_senders(value)
        if param.name == "ports":
            return parse_ports(value)
        if param.name == "hosts":
            return parse_hosts(value)
        if param.name in ("since", "until"):
            return None if value is None else parse_time(value)
    except SelectError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def filter_options(func: Callable[..., Any]) -> Any:
    """The filters of read, check and the live view, given to the command as one
    `selection` (rstdiag.select.Selection)."""
    import functools

    names = ("causes", "ports", "hosts", "senders", "min_confidence", "since", "until")

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .labels import Confidence
        from .select import Selection

        values = {name: kwargs.pop(name) for name in names}
        if values["min_confidence"] is not None:
            values["min_confidence"] = Confidence(values["min_confidence"])
        return func(*args, selection=Selection(**values), **kwargs)

    return _stack(wrapper, [
        click.option("--cause", "causes", metavar="LABELS", callback=_selection_callback,
                     help="Only RSTs of these causes (comma list, e.g. half-open,injected)."),
        click.option("--port", "ports", multiple=True, metavar="PORT",
                     callback=_selection_callback,
                     help="Only RSTs of flows with this port at either end. Repeatable."),
        click.option("--host", "hosts", multiple=True, metavar="ADDR[/LEN]",
                     callback=_selection_callback,
                     help="Only RSTs of flows with this address (or network) at either end. "
                     "Repeatable."),
        click.option("--sender", "senders", metavar="WHO", callback=_selection_callback,
                     help="Only RSTs sent by: client, server, path (forged), unknown (comma "
                     "list)."),
        click.option("--min-confidence", type=click.Choice(["low", "medium", "high"]),
                     default=None, help="Only RSTs judged with at least this confidence."),
        click.option("--since", metavar="TIME", callback=_selection_callback,
                     help="Only RSTs at or after TIME: 2020-08-20T22:55:00 (UTC unless an "
                     "offset is given), seconds since the epoch, or +10m from the capture's "
                     "first packet."),
        click.option("--until", metavar="TIME", callback=_selection_callback,
                     help="Only RSTs at or before TIME (as --since)."),
    ])


def group_options(func: Callable[..., Any]) -> Any:
    return _stack(func, [
        click.option("--by", "by", type=click.Choice(["server", "client", "port", "flow"]),
                     default=None,
                     help="Count the RSTs by cause per server (address), client (address), "
                     "server port or flow, biggest first, instead of listing them."),
        click.option("--top", type=click.IntRange(min=1), default=None, metavar="N",
                     help="With --by: the N groups with the most RSTs."),
    ])


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_STATUS_HELP)
@click.version_option(__version__, prog_name="rstdiag")
def cli() -> None:
    """Who sent that TCP RST, and why? rstdiag labels every RST in a capture with its cause,
    the evidence, and what to do about it."""


def _files(files: tuple[str, ...], read_files: tuple[str, ...]) -> tuple[str, ...]:
    paths = tuple(read_files) + tuple(files)
    if not paths:
        raise click.UsageError("give a capture: rstdiag read FILE, or -r FILE ('-' for "
                               "standard input)")
    return paths


@cli.command(epilog=READ_EXIT_STATUS_HELP)
@click.argument("files", nargs=-1, type=click.Path(allow_dash=True))
@output_options
@reading_options
@filter_options
@group_options
def read(files: tuple[str, ...], fmt: str, quiet: bool, verbose: int, color: bool | None,
         time_flags: int, pager: bool | None, read_files: tuple[str, ...], count: int | None,
         bpf: str | None, max_flows: int | None, jobs: int | None, selection: Selection,
         by: str | None, top: int | None) -> None:
    """Read pcap/pcapng FILES ('-' for standard input) and explain every TCP RST: one line
    each, then a summary by cause.

    \b
    rstdiag read capture.pcap
    rstdiag read -r capture.pcap --cause half-open --port 443
    rstdiag read --by server --top 5 capture.pcap
    rstdiag read --format jsonl capture.pcap | jq -c 'select(.label == "injected")'

    Causes: closed-port, accept-overflow, linger-abort, unread-data, data-after-close,
    half-open, keepalive-timeout, injected, client-abort, follow-up, unknown.
    """
    from .reading import ReadOptions

    paths = _files(files, read_files)
    if top is not None and by is None:
        raise click.UsageError("--top goes with --by")
    env = Environment.from_system()
    options = ReadOptions(max_flows=max_flows, count=count, bpf=bpf, jobs=jobs,
                          selection=selection)
    status = run_read(env, paths, fmt=fmt, quiet=quiet, verbose=verbose, color=color,
                      options=options, time=TIME_FLAGS.get(time_flags, "since-start"),
                      by=by, top=top, pager=pager)
    raise SystemExit(int(status))


def run_read(env: Environment, files: tuple[str, ...], *, fmt: str, quiet: bool = False,
             verbose: int = 0, color: bool | None = None, options: ReadOptions | None = None,
             time: str = "clock", by: str | None = None, top: int | None = None,
             pager: bool | None = False) -> ExitStatus:
    """`rstdiag read`: every verdict handed to the format's sink as it becomes final."""
    from .machine import CsvSink, JsonlSink, JsonSink
    from .reading import ReadOptions
    from .select import Groups

    machine = fmt in ("json", "jsonl")
    options = replace(options or ReadOptions(), json_lines=machine,
                      whole_lines=machine and by is None)
    groups = Groups(by) if by is not None else None

    def sink_for(out: TextIO, width: int | None, use_color: bool) -> Sink:
        if fmt == "json":
            return JsonSink(out, groups=groups, top=top)
        if fmt == "jsonl":
            return JsonlSink(out)
        if fmt == "csv":
            return CsvSink(out)
        from .render import TableSink, console_for

        return TableSink(console_for(out, color=use_color, width=width), width=width,
                         verbose=verbose, quiet=quiet, time=time, several=len(files) > 1,
                         groups=groups, top=top)

    return _run(env, files, options, fmt, color, pager is not False and not quiet,
                sink_for, None)


def _run(env: Environment, files: tuple[str, ...], options: ReadOptions, fmt: str,
         color: bool | None, pager: bool,
         sink_for: Callable[[TextIO, int | None, bool], Sink], result: Any) -> ExitStatus:
    """Read `files` into the sink `sink_for(out, width, color)` makes: on a terminal (width
    given) through the pager when asked, off a terminal without padding or wrapping."""
    from .machine import End
    from .reading import Interrupts, Reader

    use_color = env.color(color)
    width = _terminal_width() if env.stdout_isatty and fmt in ("table",) else None
    paging = _pager(env) if fmt == "table" and env.stdout_isatty and pager else None
    out = paging.stdin_text if paging is not None else env.stdout
    status = ExitStatus.OK
    with Interrupts() as interrupts:
        reader = Reader(env, files, options, interrupts,
                        progress=lambda path: _progress(env, path))
        try:
            sink = sink_for(out, width, use_color)
            for verdict in reader:
                sink.add(verdict)
            if result is not None:
                result.interrupted = reader.interrupted
                from .gate import InputError

                result.errors = [InputError(p, m) for p, m in reader.errors]
            if reader.files or result is not None:  # read prints nothing of no capture
                sink.close(End(reader.files, reader.errors, reader.interrupted))
            out.flush()
        except BrokenPipeError:
            if paging is None:
                _silence_stdout()
        finally:
            if paging is not None:
                paging.close()
    if reader.interrupted:
        status = ExitStatus.INTERRUPTED
    elif reader.errors:
        status = ExitStatus.ERROR
    return status


class _Pager:
    """$PAGER (default `less` with LESS=FRX: quit if one screen, colours, no clearing), as
    git runs it; rstdiag writes into it."""

    def __init__(self, command: list[str], environ: dict[str, str]) -> None:
        import io
        import subprocess

        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, env=environ)
        assert self.proc.stdin is not None
        self.stdin_text = io.TextIOWrapper(self.proc.stdin, encoding="utf-8",
                                           errors="replace", line_buffering=False)

    def close(self) -> None:
        import contextlib

        with contextlib.suppress(BrokenPipeError):
            self.stdin_text.close()
        while True:
            try:
                self.proc.wait()
                return
            except KeyboardInterrupt:  # the pager handles Ctrl-C itself
                continue


def _pager(env: Environment) -> _Pager | None:
    import shlex
    import shutil

    command = env.environ.get("RSTDIAG_PAGER", env.environ.get("PAGER", "less"))
    words = shlex.split(command) if command.strip() else []
    if not words or words == ["cat"] or shutil.which(words[0]) is None:
        return None
    environ = dict(env.environ)
    environ.setdefault("LESS", "FRX")
    environ.setdefault("LV", "-c")
    try:
        return _Pager(words, environ)
    except OSError:
        return None


CHECK_EXIT_STATUS_HELP = (
    "Exit status (the conventions of ruff and pytest): 0 passed, 1 more RSTs with failing "
    "causes than --max allows, 2 usage error, bad baseline or unreadable capture, "
    "130 interrupted (never PASS)."
)


def _fail_on_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from .gate import DEFAULT_FAIL_ON, GateError, parse_labels

    if value is None:
        return DEFAULT_FAIL_ON
    try:
        return parse_labels(value)
    except GateError as exc:
        raise click.BadParameter(str(exc)) from None


def _ignore_flow_option(ctx: click.Context, param: click.Parameter,
                        value: tuple[str, ...]) -> Any:
    from .gate import GateError, parse_flow_rule

    try:
        return tuple(parse_flow_rule(rule) for rule in value)
    except GateError as exc:
        raise click.BadParameter(str(exc)) from None


def _baseline_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from .gate import Baseline, GateError

    if value is None:
        return None
    try:
        return Baseline.load(value)
    except GateError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command(epilog=CHECK_EXIT_STATUS_HELP)
@click.argument("files", nargs=-1, type=click.Path(allow_dash=True))
@click.option("--fail-on", "fail_on", metavar="LABELS", callback=_fail_on_option,
              help="Comma list of the causes that fail the check (default: every cause but "
              "closed-port and client-abort).")
@click.option("--max", "max_findings", type=click.IntRange(min=0), default=0,
              show_default=True, metavar="N",
              help="Fail when more than N RSTs have those causes.")
@click.option("--ignore-flow", "ignore_flows", multiple=True, metavar="HOST:PORT[-HOST:PORT]",
              callback=_ignore_flow_option,
              help="Do not count RSTs of flows with this endpoint (either side), or of the "
              "flow between these two endpoints (either direction); IPv6 as [addr]:port. "
              "Repeatable.")
@click.option("--ignore-port", "ignore_ports", multiple=True, metavar="PORT",
              type=click.IntRange(0, 65535),
              help="Do not count RSTs of flows to this server port. Repeatable.")
@click.option("--baseline", "baseline", metavar="FILE", callback=_baseline_option,
              help="Accept the RSTs listed in this baseline (from --write-baseline): "
              "each (cause, server port) up to its count.")
@click.option("--write-baseline", "write_baseline", metavar="FILE",
              type=click.Path(dir_okay=False),
              help="Write the RSTs that count now as the baseline FILE, and pass.")
@output_options(formats=("table", "json", "jsonl", "csv", "junit", "github", "markdown"),
                format_help="table for people; json (the read document plus a \"check\" "
                "object); jsonl and csv (every RST as in read, plus its outcome: finding, "
                "accepted, ignored, not-checked, duplicate); junit (JUnit XML), github "
                "(workflow commands), markdown (for a pull request).",
                quiet_help="Table: print the PASS/FAIL line only.",
                verbose_help="Table: list every RST and its outcome, not only those that "
                "fail the check; -vv the evidence too.")
@reading_options
@filter_options
def check(files: tuple[str, ...], fail_on: Any, max_findings: int, ignore_flows: Any,
          ignore_ports: tuple[int, ...], baseline: Any, write_baseline: str | None, fmt: str,
          quiet: bool, verbose: int, color: bool | None, time_flags: int, pager: bool | None,
          read_files: tuple[str, ...], count: int | None, bpf: str | None,
          max_flows: int | None, jobs: int | None, selection: Selection) -> None:
    """Fail (exit status 1) when captures FILES ('-' for standard input) show TCP RSTs that
    should not happen: the CI gate for traffic captured in integration and load tests.

    Causes: closed-port, accept-overflow, linger-abort, unread-data, data-after-close,
    half-open, keepalive-timeout, injected, client-abort, follow-up, unknown. Identical copies
    of a RST never count; the filters (--cause, --port, ...) choose the RSTs checked.
    """
    from .gate import Policy
    from .reading import ReadOptions

    paths = _files(files, read_files)
    policy = Policy(fail_on=fail_on, max=max_findings, ignore_flows=ignore_flows,
                    ignore_ports=frozenset(ignore_ports), baseline=baseline)
    env = Environment.from_system()
    options = ReadOptions(max_flows=max_flows, count=count, bpf=bpf, jobs=jobs,
                          selection=selection)
    status = run_check(env, paths, policy, fmt=fmt, quiet=quiet, verbose=verbose, color=color,
                       options=options, write_baseline=write_baseline,
                       time=TIME_FLAGS.get(time_flags, "since-start"), pager=pager)
    raise SystemExit(int(status))


def run_check(env: Environment, files: tuple[str, ...], policy: Any, *, fmt: str,
              quiet: bool = False, verbose: int = 0, color: bool | None = None,
              options: ReadOptions | None = None, write_baseline: str | None = None,
              time: str = "clock", pager: bool | None = False) -> ExitStatus:
    from .ci_formats import CheckSink
    from .gate import CheckResult
    from .reading import ReadOptions

    options = options or ReadOptions()
    result = CheckResult(policy, keep=fmt == "junit", keep_offending=fmt == "json",
                         accept_all=write_baseline is not None)

    def sink_for(out: TextIO, width: int | None, use_color: bool) -> Sink:
        return CheckSink(result, fmt, out, color=use_color, width=width, verbose=verbose,
                         quiet=quiet, time=time, several=len(files) > 1)

    status = _run(env, files, options, fmt, color, pager is not False and not quiet,
                  sink_for, result)
    if status is ExitStatus.OK and write_baseline is not None:
        new = result.baseline()
        try:
            new.save(write_baseline)
        except OSError as exc:
            env.error(f"{write_baseline}: cannot write the baseline ({exc.strerror})")
            return ExitStatus.ERROR
        print(f"rstdiag: baseline {write_baseline} written: {sum(new.accepted.values())} "
              f"RSTs accepted in {len(new.accepted)} (cause, server port) entries",
              file=env.stderr, flush=True)
    elif write_baseline is not None:
        env.error(f"baseline {write_baseline} not written: not every capture was read")
    if status is not ExitStatus.OK:
        return status
    return ExitStatus.FINDINGS if result.over_limit else ExitStatus.OK


EXPLAIN_EXIT_STATUS_HELP = (
    "Exit status: 0 done (also when the frame is not a RST: its flow is shown), 2 usage "
    "error, unreadable capture, a frame that is not a TCP packet or a flow not in the "
    "capture, 130 interrupted."
)


def _flow_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from .gate import GateError, parse_flow_rule

    if value is None:
        return None
    try:
        rule = parse_flow_rule(value)
    except GateError as exc:
        raise click.BadParameter(str(exc)) from None
    if rule.b is None:
        raise click.BadParameter(f"{value!r}: expected CLIENT-SERVER, e.g. "
                                 "192.0.2.1:40000-198.51.100.7:80")
    return (rule.a, rule.b)


@cli.command(epilog=EXPLAIN_EXIT_STATUS_HELP)
@click.argument("file", type=click.Path(allow_dash=True))
@click.option("--frame", "frame", type=click.IntRange(min=1), metavar="N",
              help="The RST (or any TCP packet) to explain, numbered as Wireshark does.")
@click.option("--flow", "flow", metavar="CLIENT-SERVER", callback=_flow_option,
              help="The flow to draw, e.g. 192.0.2.1:40000-198.51.100.7:80 (either order; "
              "IPv6 as [addr]:port).")
@click.option("--all", "show_all", is_flag=True,
              help="Every packet of a long flow (default: the first 20, the last 40 and those "
              "around the frame and the RSTs).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="table: the ladder diagram; json: the packets and the "
              "verdicts.")
@click.option("--color/--no-color", default=None,
              help="Colour the ladder (default: on a terminal, unless NO_COLOR is set).")
@filter_options
def explain(file: str, frame: int | None, flow: Any, show_all: bool, fmt: str,
            color: bool | None, selection: Selection) -> None:
    """Draw the flow of a RST in FILE ('-' for standard input) as a ladder diagram (client
    left, server right, one line per packet) with the verdict, evidence and hint under each
    RST.

    Give the RST with --frame N, or the flow with --flow CLIENT-SERVER, or let the filters
    (--cause, --port, ...) choose: the first RST that passes them (on the --flow, if given).
    """
    chosen = None if selection.everything else selection
    if frame is not None and (flow is not None or chosen is not None):
        raise click.UsageError("--frame names the RST already: give it without --flow or "
                               "filters")
    if frame is None and flow is None and chosen is None:
        raise click.UsageError("give --frame N, --flow CLIENT-SERVER, or filters that "
                               "choose a RST (--cause, --port, ...)")
    env = Environment.from_system()
    status = run_explain(env, file, frame=frame, flow=flow, show_all=show_all, fmt=fmt,
                         color=color, selection=chosen)
    raise SystemExit(int(status))


def run_explain(env: Environment, path: str, *, frame: int | None = None, flow: Any = None,
                show_all: bool = False, fmt: str = "table", color: bool | None = None,
                selection: Selection | None = None) -> ExitStatus:
    import json

    from .ladder import explain_file, first_selected, print_ladder

    try:
        with _spooled(env, path) as readable:
            if selection is not None:
                frame, flow = first_selected(readable, selection, flow), None
            ladder = explain_file(readable, frame=frame, flow=flow)
            ladder.path = path if path != "-" else "<stdin>"
    except (RstdiagError, OSError, KeyboardInterrupt) as exc:
        return failure(env, exc, capture=path, file=path, interrupted="interrupted")
    for warning in ladder.warnings:
        env.warn(f"{path}: {warning}")
    try:
        if fmt == "json":
            json.dump(ladder.to_dict(), env.stdout, indent=2)
            env.stdout.write("\n")
        else:
            print_ladder(ladder, env.stdout, color=env.color(color), show_all=show_all,
                         width=None if not env.stdout_isatty else _terminal_width())
        env.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    return ExitStatus.OK


class _spooled:  # noqa: N801 - used as a context manager, reads as a phrase
    """A path the ladder can read twice: the file itself, or standard input, a pipe or a
    FIFO copied to a temporary file first (removed after)."""

    def __init__(self, env: Environment, path: str) -> None:
        self.env = env
        self.path = path
        self.temp: str | None = None

    def __enter__(self) -> str:
        import os
        import shutil
        import stat
        import tempfile

        if self.path != "-" and stat.S_ISREG(os.stat(self.path).st_mode):
            return self.path
        fd, self.temp = tempfile.mkstemp(prefix="rstdiag-", suffix=".pcap")
        with os.fdopen(fd, "wb") as spool:
            if self.path == "-":
                shutil.copyfileobj(self.env.stdin, spool, 1 << 20)
            else:
                with open(self.path, "rb") as source:
                    shutil.copyfileobj(source, spool, 1 << 20)
        return self.temp

    def __exit__(self, *exc: object) -> None:
        import os

        if self.temp is not None:
            os.unlink(self.temp)


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size().columns


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


HELP_TOPICS = ("causes", "exit-status", "filters", "formats")


@cli.command(name="help")
@click.argument("topic", required=False)
@click.pass_context
def help_command(ctx: click.Context, topic: str | None) -> None:
    """The reference on the terminal: `rstdiag help COMMAND` (read, check, explain, live),
    or a topic: causes, exit-status, filters, formats."""
    root = ctx.find_root()
    if topic is None:
        click.echo(root.get_help())
        click.echo(f"\nTopics: rstdiag help COMMAND, or one of {', '.join(HELP_TOPICS)}.")
        return
    command = cli.commands.get(topic)
    if command is not None and topic != "help":
        with click.Context(command, info_name=topic, parent=root) as sub:
            click.echo(command.get_help(sub))
        return
    if topic not in HELP_TOPICS:
        raise click.BadParameter(f"{topic!r}: give a command ({', '.join(cli.commands)}) or "
                                 f"a topic ({', '.join(HELP_TOPICS)})", param_hint="TOPIC")
    click.echo(_topic(topic))


def _topic(topic: str) -> str:
    from .labels import HINTS

    if topic == "causes":
        return "\n".join(f"{label}\n    {hint}" for label, hint in HINTS.items())
    if topic == "exit-status":
        return ("0  done (read, explain, live), or the check passed\n"
                "1  check: more RSTs with failing causes than --max allows\n"
                "2  usage error, a capture that cannot be read, live cannot capture\n"
                "130  interrupted by Ctrl-C or SIGTERM: what was read is still reported; an "
                "interrupted check is never PASS")
    if topic == "filters":
        return ("read and check show only the RSTs that pass every filter given:\n"
                "  --cause LABELS           comma list (rstdiag help causes)\n"
                "  --port PORT              either end of the flow, as tcpdump's port\n"
                "  --host ADDR[/LEN]        an address or network at either end\n"
                "  --sender WHO             client, server, path (forged), unknown\n"
                "  --min-confidence LEVEL   low, medium, high\n"
                "  --since/--until TIME     2020-08-20T22:55:00 (UTC), epoch seconds, +10m\n"
                "  -f EXPR                  a pcap-filter expression, applied by tcpdump\n"
                "  -c N                     the first N packets only\n"
                "  --by server|client|port|flow [--top N]   RSTs by cause per group")
    return ("table     one line per RST, the summary by cause last (people)\n"
            "json      one document: rsts first, then files, summary, copies (groups, check)\n"
            "jsonl     one verdict per line, written as it is final\n"
            "csv       a header, then one row per verdict\n"
            "check also: junit, github (at most 10 annotations per cause and capture), "
            "markdown")


LIVE_EXIT_STATUS_HELP = (
    "Exit status: 0 stopped by -c or --duration, 2 cannot capture (no such interface, "
    "interface down, no privilege, bad filter, no tracefs for --kernel-reasons), cannot serve "
    "metrics (--metrics-port in use), cannot write the --log file, no such -Z user, or the "
    "-w file could not be written any more (disk full: the capture stops there, the file "
    "ends at its last whole packet), 130 stopped by Ctrl-C or SIGTERM (the summary is "
    "printed in every case)."
)


def _size_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from .logsink import parse_size

    if value is None:
        return None
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if size < 1024:
        raise click.BadParameter(f"{value!r}: at least 1K, so that a line fits")
    return size


@cli.command(epilog=LIVE_EXIT_STATUS_HELP)
@click.option("-i", "--interface", "interface", required=True, metavar="IFACE",
              help="Interface to capture on (`any`: all of them, in Linux cooked mode).")
@click.option("-f", "--filter", "bpf", metavar="EXPR",
              help="BPF filter (pcap-filter syntax, as tcpdump), combined with rstdiag's "
              "own: tcp and (EXPR). Also accepted as trailing words.")
@click.argument("expression", nargs=-1)
@click.option("-c", "--count", type=click.IntRange(min=1), metavar="COUNT",
              help="Stop after COUNT packets (that pass the filter), as tcpdump -c.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop after SECONDS.")
@click.option("-w", "--write", "write", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also save the packets to FILE (pcap, nanosecond timestamps); frame "
              "numbers in the verdicts are those of FILE.")
@click.option("-s", "--snaplen", type=click.IntRange(96, 262144), metavar="BYTES",
              help="Bytes kept of each packet (default: whole packets with -w, else 384).")
@click.option("-B", "--buffer-size", "buffer_kib", type=click.IntRange(min=4096),
              default=65536, show_default=True, metavar="KiB",
              help="Kernel capture ring, in KiB (as tcpdump -B).")
@click.option("-p", "--no-promiscuous-mode", "no_promisc", is_flag=True,
              help="Do not put the interface into promiscuous mode.")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default=None,
              help="table: a live view (default on a terminal); jsonl: one verdict per line "
              "as it comes, updates with \"update\": true, a summary object last (default "
              "otherwise).")
@click.option("--color/--no-color", default=None, help="Colour the table.")
@click.option("--kernel-reasons", is_flag=True,
              help="Show the kernel's own reason for each RST this host sends (tracepoint "
              "tcp:tcp_send_reset; root) and count where it agrees with the verdict.")
@click.option("--max-flows", type=click.IntRange(min=1000), default=None,
              help="Flows held in memory at once (default 65536).")
@click.option("--no-view", is_flag=True,
              help="Headless: no live view even on a terminal; stdout gets the summary at the "
              "end (or, with --format jsonl, every verdict). Off a terminal there is no view "
              "anyway.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Serve Prometheus metrics on http://ADDR:PORT/metrics (9465 is rstdiag's "
              "usual port; 0: any free port, printed on stderr).")
@click.option("--metrics-addr", default=None, metavar="ADDR",
              help="Address the metrics endpoint listens on (default 127.0.0.1: this host "
              "only; 0.0.0.0 for a Prometheus elsewhere, :: for IPv6).")
@click.option("--metrics-max-ports", type=click.IntRange(min=1), default=None, metavar="N",
              help="Server ports with series of their own in rstdiag_rsts_total (default 32: "
              "the first N seen); RSTs on later ports count under port=\"other\".")
@click.option("--log", "log", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also write every verdict to FILE as a JSON line (the read --format json "
              "verdict plus host), rotated by size, for a log shipper.")
@click.option("--log-max-bytes", callback=_size_option, default=None, metavar="SIZE",
              help="Rotate the --log FILE when it would grow past SIZE (bytes, or with K, M, "
              "G; default 10M): FILE becomes FILE.1, and so on.")
@click.option("--log-backups", type=click.IntRange(min=1), default=None, metavar="N",
              help="Rotated --log files kept, FILE.1 (newest) to FILE.N (default 5).")
@click.option("-Z", "--relinquish-privileges", "user", default=None, metavar="USER",
              help="Once the capture (and tracing, metrics, files) are open, run as USER "
              "without capabilities, with no_new_privs, as tcpdump -Z (root's default: the "
              "user who ran sudo, else nobody; -Z root keeps root).")
@filter_options
def live(interface: str, bpf: str | None, expression: tuple[str, ...], count: int | None,
         duration: float | None, write: str | None, snaplen: int | None, buffer_kib: int,
         no_promisc: bool, fmt: str | None, color: bool | None, kernel_reasons: bool,
         max_flows: int | None, no_view: bool, metrics_port: int | None,
         metrics_addr: str | None, metrics_max_ports: int | None, log: str | None,
         log_max_bytes: int | None, log_backups: int | None, user: str | None,
         selection: Selection) -> None:
    """Capture on IFACE and explain every TCP RST as it happens (Linux; root or
    CAP_NET_RAW). Ctrl-C stops and prints the summary.

    \b
    rstdiag live -i eth0
    rstdiag live -i eth0 -f 'port 443' -w rst.pcap
    rstdiag live -i any --format jsonl | jq -c 'select(.label == "half-open")'
    rstdiag live -i eth0 --no-view --metrics-port 9465 --log /var/log/rstdiag/rst.jsonl
    """
    from .live import LiveOptions, run_live

    if bpf and expression:
        raise click.UsageError("give the filter either with -f or as trailing words, not both")
    for name, value, needs in (("--metrics-addr", metrics_addr, metrics_port),
                               ("--metrics-max-ports", metrics_max_ports, metrics_port),
                               ("--log-max-bytes", log_max_bytes, log),
                               ("--log-backups", log_backups, log)):
        if value is not None and needs is None:
            wanted = "--metrics-port" if name.startswith("--metrics") else "--log"
            raise click.UsageError(f"{name} goes with {wanted}")
    opts = LiveOptions(interface=interface, expression=bpf or " ".join(expression) or None,
                       count=count, duration=duration, write=write, snaplen=snaplen,
                       buffer_kib=buffer_kib, promiscuous=not no_promisc, fmt=fmt, color=color,
                       kernel_reasons=kernel_reasons, max_flows=max_flows, view=not no_view,
                       metrics_port=metrics_port, log=log, user=user,
                       selection=None if selection.everything else selection)
    if metrics_addr is not None:
        opts.metrics_addr = metrics_addr
    if metrics_max_ports is not None:
        opts.metrics_max_ports = metrics_max_ports
    if log_max_bytes is not None:
        opts.log_max_bytes = log_max_bytes
    if log_backups is not None:
        opts.log_backups = log_backups
    raise SystemExit(int(run_live(Environment.from_system(), opts)))


cli.add_command(annotate)
cli.add_command(report)


def _silence_stdout() -> None:
    """The reader went away (| head): exit quietly, without Python's flush error at exit."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    if _importing(frame):
        # Raised inside the import machinery, the interrupt would be wrapped ("Error calling
        # __set_name__") or printed as ignored and lost (a module lock's callback): it comes
        # again in 5 ms, once the import is likelier done.
        signal.signal(signal.SIGALRM, _sigterm_as_interrupt)
        signal.setitimer(signal.ITIMER_REAL, 0.005)
        return
    raise KeyboardInterrupt


def _importing(frame: FrameType | None) -> bool:
    """Whether Python is loading a module at `frame` (`read` imports its modules lazily)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def main() -> None:
    """The `rstdiag` command. Ctrl-C or SIGTERM before the reading starts (or after it)
    is status 130 with a word on stderr, never click's `Aborted!` and status 1."""
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        status = cli.main(prog_name="rstdiag", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("rstdiag: interrupted", file=sys.stderr, flush=True)
        status = int(ExitStatus.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        status = exc.exit_code
    # Everything is written: a SIGTERM from here on ends the process as it would any other,
    # not with an interrupt raised while the interpreter shuts down (a traceback).
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(status if isinstance(status, int) else 0)
