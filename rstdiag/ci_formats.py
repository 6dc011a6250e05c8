"""Renderers of a `rstdiag check` result: a table for people, and what CI systems read.

table     rich table of the offending RSTs, then the PASS/FAIL line;
json      the document of `read --format json` plus a "check" object;
junit     JUnit XML (Jenkins, GitLab): one testcase per capture and cause found in it;
github    GitHub Actions workflow commands (annotations);
markdown  a summary by cause and the first offending RSTs, to paste into a pull request.

table, json, jsonl and csv stream (CheckSink); junit, github and markdown are written at the
end from the CheckResult and the captures' End. Text from a capture is data in every one:
made visible (rstdiag.textsafe) and escaped as the format needs.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.text import Text

from .analysis import FileReport
from .gate import CheckResult, FileOutcomes, Outcome, ordered_labels
from .labels import Label, Verdict
from .machine import Counted, CsvSink, End, JsonlSink, JsonSink, feed
from .render import TableSink, console_for
from .textsafe import visible

CHECK_FORMATS = ("table", "json", "jsonl", "csv", "junit", "github", "markdown")
MARKDOWN_LIST_LIMIT = 20
GITHUB_PER_CAUSE = 10  # annotations per cause and capture; GitHub shows few per step


def flow(v: Verdict) -> str:
    return visible(f"{v.client} -> {v.server}")


def describe(v: Verdict) -> str:
    """One line for an offending RST: frame, flow, evidence (made visible)."""
    return f"frame {v.frame} {flow(v)}: {visible(v.evidence)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def status_word(result: CheckResult) -> str:
    if result.interrupted:
        return "INTERRUPTED"
    if result.over_limit:
        return "FAIL"
    return "ERROR" if result.errors else "PASS"


def summary_line(result: CheckResult, captures: int) -> str:
    """`FAIL: 3 RSTs with failing causes, more than --max 0: data-after-close 1, ...`.

    An interrupted check never says PASS: it did not see everything."""
    findings, limit = result.finding_count, result.policy.max
    counts = ", ".join(f"{label} {n}" for label, n in result.by_label.items())
    if not findings:
        line = f"no RSTs with failing causes (--max {limit})"
    else:
        where = "more than" if result.over_limit else "within"
        line = (f"{_plural(findings, 'RST')} with failing causes, {where} --max {limit}: "
                f"{counts}")
    if result.interrupted:
        line = f"interrupted before the end; so far {line}"
    others = [(result.counts[Outcome.ACCEPTED], "accepted by the baseline"),
              (result.counts[Outcome.IGNORED], "ignored"),
              (result.counts[Outcome.NOT_CHECKED], "with other causes"),
              (result.duplicates, "identical copies")]
    tail = [f"{n} {what}" for n, what in others if n]
    if result.errors and not captures:
        return f"{status_word(result)}: {_plural(len(result.errors), 'capture')} could not be read"
    where = _plural(captures, "capture")
    if result.errors:
        where += f", {len(result.errors)} unreadable"
    return f"{status_word(result)}: {line} ({where}{'; ' if tail else ''}{'; '.join(tail)})"


# --- streaming sinks: table, json, jsonl, csv -----------------------------------------------

OUTCOME_TEXT = {
    Outcome.FINDING: ("counts", "bold"),
    Outcome.ACCEPTED: ("baseline", ""),
    Outcome.IGNORED: ("ignored", ""),
    Outcome.NOT_CHECKED: ("not checked", "dim"),
    Outcome.DUPLICATE: ("copy", "dim"),
}
STATUS_STYLE = {"PASS": "bold green", "FAIL": "bold red", "ERROR": "bold red",
                "INTERRUPTED": "bold yellow"}


class CheckSink:
    """Judges each verdict as it comes and hands it to the format's sink with its outcome;
    the PASS/FAIL line, or the CI format, at the end."""

    def __init__(self, result: CheckResult, fmt: str, out: TextIO, *, color: bool = False,
                 width: int | None = None, verbose: int = 0, quiet: bool = False,
                 time: str = "clock", several: bool = False) -> None:
        self.result = result
        self.fmt = fmt
        self.out = out
        self.verbose = verbose
        self.last = Outcome.FINDING
        self.console: Console | None = None
        self.inner: TableSink | JsonSink | JsonlSink | CsvSink | None = None
        extra = self._extra
        if fmt == "table":
            self.console = console_for(out, color=color, width=width)
            title = "TCP resets and their outcome in the check" if verbose else \
                "TCP resets failing the check"
            self.inner = TableSink(self.console, width=width, verbose=max(verbose - 1, 0),
                                   quiet=quiet, time=time, several=several, title=title,
                                   outcome=self._outcome_cell if verbose else None,
                                   summary=False)
        elif fmt == "json":
            self.inner = JsonSink(out, more=lambda: {"check": result.to_dict()})
        elif fmt == "jsonl":
            self.inner = JsonlSink(out, extra=extra)
        elif fmt == "csv":
            self.inner = CsvSink(out, extra=extra, extra_fields=("outcome",))

    def _extra(self, v: Verdict) -> dict[str, object]:
        return {"outcome": str(self.last)}

    def _outcome_cell(self, v: Verdict) -> tuple[str, str]:
        return OUTCOME_TEXT[self.last]

    def add(self, v: Verdict) -> None:
        self.last = self.result.judge(v)
        if self.inner is None:
            return
        if self.fmt == "table" and not self.verbose and self.last is not Outcome.FINDING:
            self.inner.tally.add(v)
            return
        self.inner.add(v)

    def close(self, end: End) -> None:
        result = self.result
        captures = len(end.files)
        if self.inner is not None:
            self.inner.close(end)
        if self.fmt == "table":
            assert self.console is not None
            word = status_word(result)
            line = summary_line(result, captures)
            text = Text(word, style=STATUS_STYLE[word])
            text.append(visible(line[len(word):]))
            self.console.print(text, soft_wrap=True)
        elif self.fmt in WRITERS:
            WRITERS[self.fmt](result, end, self.out)


# --- junit --------------------------------------------------------------------------------

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(text: str) -> str:
    """Text XML 1.0 can carry, made visible line by line: characters it forbids become \\xNN
    (the newlines are rstdiag's own: capture text is made visible before it gets here)."""
    text = "\n".join(visible(part) for part in text.split("\n"))
    return _XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _classname(path: str) -> str:
    """`rstdiag.<file name>`: Jenkins splits class names at dots into package and class."""
    return "rstdiag." + visible(os.path.basename(path)).replace(".", "_")


def _junit_detail(v: Verdict) -> str:
    return (f"{visible(v.file)} frame {v.frame}: {v.label} ({v.confidence} confidence), "
            f"flow {flow(v)}, sent by {v.sender}\n  evidence: {visible(v.evidence)}\n"
            f"  hint: {v.hint}")


def write_junit(result: CheckResult, end: End | Sequence[FileReport], out: TextIO) -> None:
    """JUnit XML: a testsuite per capture, a testcase per cause found in it (or one passing
    `no TCP resets` testcase for a capture without any). A cause's testcase fails, with one
    <failure> listing every offending RST of it, when the check fails on it; an unreadable
    capture is a testsuite with one testcase in error."""
    end = as_end(end)
    root = ET.Element("testsuites", name="rstdiag check")
    totals: Counter[str] = Counter()
    kept = {f.path: f for f in result.files}
    for read in end.files:
        file = kept.get(read.path) or FileOutcomes(read.path)
        suite = ET.SubElement(root, "testsuite", name=_xml_text(file.path))
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="fail_on",
                      value=",".join(ordered_labels(result.policy.fail_on)))
        ET.SubElement(props, "property", name="max", value=str(result.policy.max))
        counts: Counter[str] = Counter()
        by_label: dict[Label, list[tuple[Verdict, Outcome]]] = {}
        for v, o in file.outcomes:
            by_label.setdefault(v.label, []).append((v, o))
        if not by_label:
            ET.SubElement(suite, "testcase", classname=_classname(file.path),
                          name="no TCP resets", file=_xml_text(file.path), time="0")
            counts["tests"] += 1
        for label in Label:
            if label not in by_label:
                continue
            pairs = by_label[label]
            case = ET.SubElement(suite, "testcase", classname=_classname(file.path),
                                 name=str(label), file=_xml_text(file.path), time="0")
            counts["tests"] += 1
            offending = [v for v, o in pairs if o is Outcome.FINDING]
            failed = bool(offending) and result.over_limit
            if failed:
                counts["failures"] += 1
                frames = ", ".join(str(v.frame) for v in offending)
                failure = ET.SubElement(
                    case, "failure", type=str(label),
                    message=_xml_text(f"{_plural(len(offending), 'RST')} labelled {label} "
                                      f"(frame{'s' if len(offending) > 1 else ''} {frames}): "
                                      f"{describe(offending[0])}"))
                failure.text = _xml_text("\n".join(_junit_detail(v) for v in offending) + "\n")
            notes = [f"{_plural(sum(1 for _, o in pairs if o is outcome), 'RST')} {what}"
                     for outcome, what in ((Outcome.FINDING, "counted"),
                                           (Outcome.ACCEPTED, "accepted by the baseline"),
                                           (Outcome.IGNORED, "ignored"),
                                           (Outcome.NOT_CHECKED, "not checked (not in "
                                            "--fail-on)"),
                                           (Outcome.DUPLICATE, "identical copies"))
                     if any(o is outcome for _, o in pairs)]
            if offending and not result.over_limit:
                notes.append(f"within --max {result.policy.max}")
            out_text = "; ".join(notes) + "\n" + "".join(
                _junit_detail(v) + "\n" for v, o in pairs
                if o is not Outcome.DUPLICATE and not (failed and o is Outcome.FINDING))
            ET.SubElement(case, "system-out").text = _xml_text(out_text)
        _suite_counts(suite, counts)
        totals.update(counts)
    for error in result.errors:
        suite = ET.SubElement(root, "testsuite", name=_xml_text(error.file))
        case = ET.SubElement(suite, "testcase", classname=_classname(error.file),
                             name="read capture", file=_xml_text(error.file), time="0")
        ET.SubElement(case, "error", type="CaptureError",
                      message=_xml_text(error.message)).text = _xml_text(error.message)
        counts = Counter(tests=1, errors=1)
        _suite_counts(suite, counts)
        totals.update(counts)
    _suite_counts(root, totals)
    ET.indent(root)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ET.tostring(root, encoding="unicode"))
    out.write("\n")


def _suite_counts(element: ET.Element, counts: Counter[str]) -> None:
    for key in ("tests", "failures", "errors", "skipped"):
        element.set(key, str(counts[key]))
    element.set("time", "0")


# --- github -------------------------------------------------------------------------------

def escape_data(text: str) -> str:
    """Escape the message of a workflow command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a property value (file=, title=) of a workflow command."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(level: str, message: str, **props: str) -> str:
    attrs = ",".join(f"{key}={escape_property(value)}" for key, value in props.items())
    return f"::{level}{' ' + attrs if attrs else ''}::{escape_data(message)}\n"


def write_github(result: CheckResult, end: End | Sequence[FileReport], out: TextIO) -> None:
    """GitHub Actions workflow commands: an annotation per offending RST (errors when the
    check fails, warnings when they stay within --max), at most GITHUB_PER_CAUSE per cause
    and capture and then a notice with how many more; one per unreadable capture; a notice
    with the summary."""
    end = as_end(end)
    level = "error" if result.over_limit else "warning"
    for (file, label), sample in result.samples.items():
        for v in sample:
            out.write(_command(level, describe(v), file=visible(file), title=f"rstdiag {label}"))
        total = result_count(result, file, label)
        if total > len(sample):
            out.write(_command("notice", f"{total - len(sample)} more RSTs labelled {label} "
                               f"in this capture (rstdiag check lists them all)",
                               file=visible(file), title=f"rstdiag {label}"))
    for error in result.errors:
        out.write(_command("error", f"cannot read the capture: {visible(error.message)}",
                           file=visible(error.file), title="rstdiag"))
    out.write(_command("notice", summary_line(result, len(end.files)), title="rstdiag check"))


def result_count(result: CheckResult, file: str, label: Label) -> int:
    """Findings of `label` in capture `file`."""
    return result.per_capture[(file, label)]


# --- markdown -----------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*<|\[\]~])")


def md(text: str) -> str:
    """Text safe in a Markdown paragraph or table cell (not at the start of a line)."""
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def code(text: str) -> str:
    """A Markdown code span."""
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


def write_markdown(result: CheckResult, end: End | Sequence[FileReport], out: TextIO) -> None:
    """A summary by cause with pass/fail, then the first offending RSTs."""
    end = as_end(end)
    word = status_word(result)
    icon = {"PASS": "✅", "FAIL": "❌", "ERROR": "❌", "INTERRUPTED": "⚠️"}[word]
    out.write(f"### {icon} rstdiag check: {word}\n\n{md(summary_line(result, len(end.files)))}\n\n")
    counts = {label: Counter({o: n for o, n in c.items() if o is not Outcome.DUPLICATE})
              for label, c in result.outcomes_by_label.items()}
    counts = {label: c for label, c in counts.items() if c}
    out.write("| cause | RSTs | counted | baseline | ignored | result |\n")
    out.write("|---|---:|---:|---:|---:|---|\n")
    if not counts:
        out.write("| no TCP resets | 0 | 0 | 0 | 0 | ✅ pass |\n")
    for label in Label:
        if label not in counts:
            continue
        c = counts[label]
        if label not in result.policy.fail_on:
            verdict, counted = "not checked", "–"
        else:
            counted = str(c[Outcome.FINDING])
            if not c[Outcome.FINDING]:
                verdict = "✅ pass"
            elif result.over_limit:
                verdict = "❌ fail"
            else:
                verdict = f"⚠️ within --max {result.policy.max}"
        out.write(f"| `{label}` | {c.total()} | {counted} | {c[Outcome.ACCEPTED]} | "
                  f"{c[Outcome.IGNORED]} | {verdict} |\n")
    total = result.finding_count
    if total:
        shown = result.first_findings[:MARKDOWN_LIST_LIMIT]
        heading = "Offending RSTs" if total <= len(shown) else \
            f"First {len(shown)} of {total} offending RSTs"
        out.write(f"\n#### {heading}\n\n")
        for n, v in enumerate(shown, 1):
            out.write(f"{n}. {code(visible(os.path.basename(v.file)))} frame {v.frame}, "
                      f"**{v.label}**, {code(flow(v))} (sent by {v.sender}, {v.confidence} "
                      f"confidence): {md(visible(v.evidence))}\n")
        if total > len(shown):
            out.write(f"\n{total - len(shown)} more: run `rstdiag check` for the "
                      "full list.\n")
    if result.errors:
        out.write("\n#### Unreadable captures\n\n")
        for error in result.errors:
            out.write(f"- {code(visible(error.file))}: {md(visible(error.message))}\n")


WRITERS = {"junit": write_junit, "github": write_github, "markdown": write_markdown}


# --- reports at once: the library's and the tests' entry points ----------------------------

def as_end(end: End | Sequence[FileReport]) -> End:
    """The End of a run, or of reports read at once."""
    if isinstance(end, End):
        return end
    return End([Counted(r) for r in end])


def write_json(result: CheckResult, reports: Sequence[FileReport], out: TextIO) -> None:
    """`check --format json` of `reports`, already judged into `result` (evaluate)."""
    feed(JsonSink(out, more=lambda: {"check": result.to_dict()}), reports)
