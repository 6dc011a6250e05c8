"""The command line: a thin click layer over rstdiag.analysis and rstdiag.render."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .cli_share import annotate, report
from .env import Environment

if TYPE_CHECKING:
    from .analysis import FileReport
from .errors import ExitStatus, RstdiagError

EXIT_STATUS_HELP = (
    "Exit status: 0 done, 1 check found RSTs over the limit, 2 usage error or unreadable "
    "capture, 130 interrupted (the summary of what was read is still printed)."
)


def output_options(func: Callable[..., Any] | None = None, *,
                   formats: tuple[str, ...] = ("table", "json", "jsonl", "csv"),
                   format_help: str = "table for people; json (one document), jsonl (one "
                   "verdict per line) or csv (header first) for machines.",
                   quiet_help: str = "Table: print the summary only.",
                   verbose_help: str = "Table: also show identical copies of RSTs.") -> Any:
    """The output options every command that prints verdicts shares.

    `@output_options` gives those of `read`; `@output_options(formats=..., ...)` another
    command's format list and help texts.
    """
    if func is None:
        return lambda f: output_options(f, formats=formats, format_help=format_help,
                                        quiet_help=quiet_help, verbose_help=verbose_help)
    options = [
        click.option("--format", "fmt", type=click.Choice(list(formats)),
                     default="table", show_default=True, help=format_help),
        click.option("-q", "--quiet", is_flag=True, help=quiet_help),
        click.option("-v", "--verbose", count=True, help=verbose_help),
        click.option("--color/--no-color", default=None,
                     help="Colour the table (default: when stdout is a terminal)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def reading_options(func: Callable[..., Any]) -> Any:
    """The options of the commands that read capture files: memory and parallelism."""
    options = [
        click.option("--max-flows", type=click.IntRange(min=1000), default=None,
                     help="Flows held in memory at once (default 200000); the oldest idle "
                     "are evicted beyond it, and counted."),
        click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Read up to N files at once, one process each (default: one per "
                     "CPU core)."),
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
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@output_options
@reading_options
def read(files: tuple[str, ...], fmt: str, quiet: bool, verbose: int, color: bool | None,
         max_flows: int | None, jobs: int | None) -> None:
    """Read pcap/pcapng FILES ('-' for standard input) and explain every TCP RST.

    Causes: closed-port, accept-overflow, linger-abort, unread-data, data-after-close,
    half-open, keepalive-timeout, injected, client-abort, follow-up, unknown.
    """
    env = Environment.from_system()
    status = run_read(env, files, fmt=fmt, quiet=quiet, verbose=verbose, color=color,
                      max_flows=max_flows, jobs=jobs)
    raise SystemExit(int(status))


def analyze_files(env: Environment, files: tuple[str, ...], max_flows: int | None,
                  jobs: int | None = 1) -> tuple[list[FileReport], list[tuple[str, str]], bool]:
    """Analyse each capture: (reports, (path, error) of unreadable files, interrupted).

    Several files are read by up to `jobs` engine threads at once (None: one per core; the
    engine releases the GIL). Errors and warnings go to stderr as each file is done; Ctrl-C
    keeps what the finished files gave (and, read one at a time, what the current file gave
    so far). An internal error of the engine is one error line, and the report of what was
    read before it.
    """
    import os

    from .analysis import Analysis

    workers = min(jobs or os.cpu_count() or 1, len(files))
    if workers > 1 and "-" not in files:
        return _analyze_in_parallel(env, files, max_flows, workers)
    reports: list[FileReport] = []
    errors: list[tuple[str, str]] = []
    for path in files:
        analysis = Analysis(path, max_flows)
        try:
            with _progress(env, path) as progress:
                report = analysis.run(progress)
        except KeyboardInterrupt:
            reports.append(analysis.finish(complete=False))
            env.warn(f"{path}: interrupted; reporting what was read")
            return reports, errors, True
        except (RstdiagError, OSError) as exc:
            partial, message = _failure(exc)
            env.error(f"{path}: {message}")
            errors.append((path, message))
            if partial is not None:
                reports.append(partial)
            continue
        _warn_all(env, path, report)
        reports.append(report)
    return reports, errors, False


def _failure(exc: BaseException) -> tuple[FileReport | None, str]:
    """(the report of what was read before the failure, if any; the error line)."""
    from .errors import EngineFault

    if isinstance(exc, EngineFault):
        return exc.report, str(exc)  # type: ignore[return-value]
    if isinstance(exc, OSError):
        return None, str(exc.strerror or exc)
    return None, str(exc)


def _warn_all(env: Environment, path: str, report: FileReport) -> None:
    for warning in report.warnings:
        env.warn(f"{path}: {warning}")


def _analyze_in_parallel(env: Environment, files: tuple[str, ...], max_flows: int | None,
                         workers: int) -> tuple[list[FileReport], list[tuple[str, str]], bool]:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from .analysis import analyze_path

    reports: list[FileReport] = []
    errors: list[tuple[str, str]] = []
    cancel = threading.Event()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="rstdiag-engine")
    try:
        futures = [pool.submit(analyze_path, path, max_flows, cancel) for path in files]
        for path, future in zip(files, futures, strict=True):
            report, message = future.result()
            if message is not None:
                env.error(f"{path}: {message}")
                errors.append((path, str(message)))
            if report is None:
                continue
            _warn_all(env, path, report)
            reports.append(report)
    except KeyboardInterrupt:
        cancel.set()  # the threads stop after their current batch, a few ms
        pool.shutdown(wait=False, cancel_futures=True)
        env.warn(f"interrupted; reporting the {len(reports)} files read to the end")
        return reports, errors, True
    pool.shutdown()
    return reports, errors, False


def run_read(env: Environment, files: tuple[str, ...], *, fmt: str, quiet: bool = False,
             verbose: int = 0, color: bool | None = None,
             max_flows: int | None = None, jobs: int | None = 1) -> ExitStatus:
    from .render import write_csv, write_json, write_jsonl, write_table

    reports, errors, interrupted = analyze_files(env, files, max_flows, jobs)
    status = ExitStatus.INTERRUPTED if interrupted else \
        ExitStatus.ERROR if errors else ExitStatus.OK
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


CHECK_EXIT_STATUS_HELP = (
    "Exit status (the conventions of ruff and pytest): 0 passed, 1 more RSTs with failing "
    "causes than --max allows, 2 usage error, bad baseline or unreadable capture, "
    "130 interrupted."
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
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
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
                "fail the check.")
@reading_options
def check(files: tuple[str, ...], fail_on: Any, max_findings: int, ignore_flows: Any,
          ignore_ports: tuple[int, ...], baseline: Any, write_baseline: str | None, fmt: str,
          quiet: bool, verbose: int, color: bool | None, max_flows: int | None,
          jobs: int | None) -> None:
    """Fail (exit status 1) when captures FILES ('-' for standard input) show TCP RSTs that
    should not happen: the CI gate for traffic captured in integration and load tests.

    Causes: closed-port, accept-overflow, linger-abort, unread-data, data-after-close,
    half-open, keepalive-timeout, injected, client-abort, follow-up, unknown. Identical copies
    of a RST never count.
    """
    from .gate import Policy

    policy = Policy(fail_on=fail_on, max=max_findings, ignore_flows=ignore_flows,
                    ignore_ports=frozenset(ignore_ports), baseline=baseline)
    env = Environment.from_system()
    status = run_check(env, files, policy, fmt=fmt, quiet=quiet, verbose=verbose, color=color,
                       max_flows=max_flows, jobs=jobs, write_baseline=write_baseline)
    raise SystemExit(int(status))


def run_check(env: Environment, files: tuple[str, ...], policy: Any, *, fmt: str,
              quiet: bool = False, verbose: int = 0, color: bool | None = None,
              max_flows: int | None = None, jobs: int | None = 1,
              write_baseline: str | None = None) -> ExitStatus:
    from dataclasses import replace

    from .ci_formats import WRITERS, write_table
    from .gate import InputError, evaluate

    reports, failed, interrupted = analyze_files(env, files, max_flows, jobs)
    errors = [InputError(path, message) for path, message in failed]
    result = evaluate(reports, policy, errors)
    if write_baseline is not None:
        if errors or interrupted:
            env.error(f"baseline {write_baseline} not written: not every capture was read")
        else:
            new = result.baseline()
            try:
                new.save(write_baseline)
            except OSError as exc:
                env.error(f"{write_baseline}: cannot write the baseline ({exc.strerror})")
                return ExitStatus.ERROR
            print(f"rstdiag: baseline {write_baseline} written: {sum(new.accepted.values())} "
                  f"RSTs accepted in {len(new.accepted)} (cause, server port) entries",
                  file=env.stderr, flush=True)
            result = evaluate(reports, replace(policy, baseline=new), errors)
    try:
        if fmt in WRITERS:
            WRITERS[fmt](result, reports, env.stdout)
        else:
            use_color = env.stdout_isatty if color is None else color
            write_table(result, reports, env.stdout, color=use_color, verbose=verbose,
                        quiet=quiet, width=None if env.stdout_isatty else 160)
        env.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    if interrupted:
        return ExitStatus.INTERRUPTED
    if errors:
        return ExitStatus.ERROR
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
@click.argument("file", type=click.Path())
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
              help="Colour the ladder (default: when stdout is a terminal).")
def explain(file: str, frame: int | None, flow: Any, show_all: bool, fmt: str,
            color: bool | None) -> None:
    """Draw the flow of a RST in FILE as a ladder diagram (client left, server right, one
    line per packet) with the verdict, evidence and hint under each RST.

    Give the RST with --frame N, or the flow with --flow CLIENT-SERVER.
    """
    if (frame is None) == (flow is None):
        raise click.UsageError("give exactly one of --frame N and --flow CLIENT-SERVER")
    env = Environment.from_system()
    status = run_explain(env, file, frame=frame, flow=flow, show_all=show_all, fmt=fmt,
                         color=color)
    raise SystemExit(int(status))


def run_explain(env: Environment, path: str, *, frame: int | None = None, flow: Any = None,
                show_all: bool = False, fmt: str = "table",
                color: bool | None = None) -> ExitStatus:
    import json

    from .ladder import explain_file, print_ladder

    try:
        ladder = explain_file(path, frame=frame, flow=flow)
    except RstdiagError as exc:
        env.error(f"{path}: {exc}")
        return ExitStatus.ERROR
    except OSError as exc:
        env.error(f"{path}: {exc.strerror or exc}")
        return ExitStatus.ERROR
    except KeyboardInterrupt:
        env.warn(f"{path}: interrupted")
        return ExitStatus.INTERRUPTED
    for warning in ladder.warnings:
        env.warn(f"{path}: {warning}")
    try:
        if fmt == "json":
            json.dump(ladder.to_dict(), env.stdout, indent=2)
            env.stdout.write("\n")
        else:
            use_color = env.stdout_isatty if color is None else color
            print_ladder(ladder, env.stdout, color=use_color, show_all=show_all,
                         width=None if not env.stdout_isatty else _terminal_width())
        env.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    return ExitStatus.OK


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
              help="Flows held in memory at once (default 200000).")
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
def live(interface: str, bpf: str | None, expression: tuple[str, ...], count: int | None,
         duration: float | None, write: str | None, snaplen: int | None, buffer_kib: int,
         no_promisc: bool, fmt: str | None, color: bool | None, kernel_reasons: bool,
         max_flows: int | None, no_view: bool, metrics_port: int | None,
         metrics_addr: str | None, metrics_max_ports: int | None, log: str | None,
         log_max_bytes: int | None, log_backups: int | None, user: str | None) -> None:
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
                       metrics_port=metrics_port, log=log, user=user)
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


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    cli(prog_name="rstdiag")
