"""Renderers of a `rstdiag check` result: a table for people, and what CI systems read.

table     rich table of the offending RSTs, then the PASS/FAIL line;
json      the document of `read --format json` plus a "check" object;
junit     JUnit XML (Jenkins, GitLab): one testcase per capture and cause found in it;
github    GitHub Actions workflow commands (annotations);
markdown  a summary by cause and the first offending RSTs, to paste into a pull request.

Every writer takes the CheckResult, the reports it was made from and a text stream.
"""

from __future__ import annotations

import csv
import json
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from rich.markup import escape
from rich.table import Table

from .analysis import FileReport
from .gate import CheckResult, Outcome, ordered_labels
from .labels import Label, Verdict
from .render import CSV_FIELDS, LABEL_STYLES, PipeSafeConsole, document, write_document
from .utctime import utc_text

CHECK_FORMATS = ("table", "json", "junit", "github", "markdown")
MARKDOWN_LIST_LIMIT = 20


def flow(v: Verdict) -> str:
    return f"{v.client} -> {v.server}"


def describe(v: Verdict) -> str:
    """One line for an offending RST: frame, flow, evidence."""
    return f"frame {v.frame} {flow(v)}: {v.evidence}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def status_word(result: CheckResult) -> str:
    if result.over_limit:
        return "FAIL"
    return "ERROR" if result.errors else "PASS"


def summary_line(result: CheckResult, reports: Sequence[FileReport]) -> str:
    """`FAIL: 3 RSTs with failing causes, more than --max 0: data-after-close 1, ...`."""
    findings, limit = len(result.findings), result.policy.max
    counts = ", ".join(f"{label} {n}" for label, n in result.by_label.items())
    if not findings:
        line = f"no RSTs with failing causes (--max {limit})"
    else:
        where = "more than" if result.over_limit else "within"
        line = (f"{_plural(findings, 'RST')} with failing causes, {where} --max {limit}: "
                f"{counts}")
    others = [(len(result.accepted), "accepted by the baseline"),
              (len(result.ignored), "ignored"),
              (len(result.not_checked), "with other causes")]
    tail = [f"{n} {what}" for n, what in others if n]
    if result.errors and not reports:
        return f"{status_word(result)}: {_plural(len(result.errors), 'capture')} could not be read"
    captures = _plural(len(reports), "capture")
    if result.errors:
        captures += f", {len(result.errors)} unreadable"
    return f"{status_word(result)}: {line} ({captures}{'; ' if tail else ''}{'; '.join(tail)})"


# --- table --------------------------------------------------------------------------------

def _time(ts: float) -> str:
    return utc_text(ts)


OUTCOME_TEXT = {
    Outcome.FINDING: "[bold]counts[/]",
    Outcome.ACCEPTED: "baseline",
    Outcome.IGNORED: "ignored",
    Outcome.NOT_CHECKED: "[dim]not checked[/]",
    Outcome.DUPLICATE: "[dim]copy[/]",
}


def write_table(result: CheckResult, reports: Sequence[FileReport], out: TextIO, *,
                color: bool, verbose: int = 0, quiet: bool = False,
                width: int | None = None) -> None:
    """The offending RSTs (every RST with -v, and what became of it), then PASS/FAIL."""
    console = PipeSafeConsole(file=out, force_terminal=color, no_color=not color, width=width,
                      highlight=False, soft_wrap=False)
    several = len(reports) > 1
    rows = [(v, o) for v, o in result.outcomes if verbose or o is Outcome.FINDING]
    if not quiet and rows:
        title = "TCP resets and their outcome in the check" if verbose else \
            "TCP resets failing the check"
        table = Table(title=title, title_justify="left", expand=False)
        if several:
            table.add_column("file", overflow="fold")
        for name in ("frame", "time (UTC)", "flow (client -> server)", "sender", "cause", "conf"):
            if name.startswith("flow"):
                table.add_column(name, overflow="fold")
            else:
                table.add_column(name, no_wrap=True)
        if verbose:
            table.add_column("outcome", no_wrap=True)
        table.add_column("evidence", overflow="fold", ratio=3)
        table.add_column("hint", overflow="fold", ratio=2)
        for v, o in rows:
            row = [str(v.frame), _time(v.ts), escape(flow(v)), str(v.sender),
                   f"[{LABEL_STYLES[v.label]}]{v.label}[/]", str(v.confidence)]
            if verbose:
                row.append(OUTCOME_TEXT[o])
            row += [escape(v.evidence), escape(v.hint)]
            table.add_row(*([escape(os.path.basename(v.file))] if several else []), *row)
        console.print(table)
    style = {"PASS": "bold green", "FAIL": "bold red", "ERROR": "bold red"}[status_word(result)]
    line = summary_line(result, reports)
    word, rest = line.split(":", 1)
    console.print(f"[{style}]{word}[/]:{escape(rest)}")


# --- json ---------------------------------------------------------------------------------

def write_json(result: CheckResult, reports: Sequence[FileReport], out: TextIO) -> None:
    """The document of `read --format json`, plus the "check" object."""
    doc = document(reports, stream=True)
    doc["check"] = result.to_dict()
    write_document(doc, out)


# --- junit --------------------------------------------------------------------------------

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(text: str) -> str:
    """Text XML 1.0 can carry: characters it forbids become \\xNN."""
    return _XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _classname(path: str) -> str:
    """`rstdiag.<file name>`: Jenkins splits class names at dots into package and class."""
    return "rstdiag." + os.path.basename(path).replace(".", "_")


def _junit_detail(v: Verdict) -> str:
    return (f"{v.file} frame {v.frame}: {v.label} ({v.confidence} confidence), "
            f"flow {flow(v)}, sent by {v.sender}\n  evidence: {v.evidence}\n  hint: {v.hint}")


def write_junit(result: CheckResult, reports: Sequence[FileReport], out: TextIO) -> None:
    """JUnit XML: a testsuite per capture, a testcase per cause found in it (or one passing
    `no TCP resets` testcase for a capture without any). A cause's testcase fails, with one
    <failure> listing every offending RST of it, when the check fails on it; an unreadable
    capture is a testsuite with one testcase in error."""
    root = ET.Element("testsuites", name="rstdiag check")
    totals: Counter[str] = Counter()
    for file in result.files:
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


def write_github(result: CheckResult, reports: Sequence[FileReport], out: TextIO) -> None:
    """GitHub Actions workflow commands: an annotation per offending RST (errors when the
    check fails, warnings when they stay within --max), one per unreadable capture, and a
    notice with the summary."""
    level = "error" if result.over_limit else "warning"
    for v in result.findings:
        out.write(_command(level, describe(v), file=v.file, title=f"rstdiag {v.label}"))
    for error in result.errors:
        out.write(_command("error", f"cannot read the capture: {error.message}",
                           file=error.file, title="rstdiag"))
    out.write(_command("notice", summary_line(result, reports), title="rstdiag check"))


# --- markdown -----------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*<|\[\]~])")


def md(text: str) -> str:
    """Text safe in a Markdown paragraph or table cell (not at the start of a line)."""
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def code(text: str) -> str:
    """A Markdown code span."""
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


def write_markdown(result: CheckResult, reports: Sequence[FileReport], out: TextIO) -> None:
    """A summary by cause with pass/fail, then the first offending RSTs."""
    word = status_word(result)
    icon = {"PASS": "✅", "FAIL": "❌", "ERROR": "❌"}[word]
    out.write(f"### {icon} rstdiag check: {word}\n\n{md(summary_line(result, reports))}\n\n")
    counts: dict[Label, Counter[Outcome]] = {}
    for v, o in result.outcomes:
        if o is not Outcome.DUPLICATE:
            counts.setdefault(v.label, Counter())[o] += 1
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
    findings = result.findings
    if findings:
        shown = findings[:MARKDOWN_LIST_LIMIT]
        heading = "Offending RSTs" if len(findings) <= len(shown) else \
            f"First {len(shown)} of {len(findings)} offending RSTs"
        out.write(f"\n#### {heading}\n\n")
        for n, v in enumerate(shown, 1):
            out.write(f"{n}. {code(os.path.basename(v.file))} frame {v.frame}, **{v.label}**, "
                      f"{code(flow(v))} (sent by {v.sender}, {v.confidence} confidence): "
                      f"{md(v.evidence)}\n")
        if len(findings) > len(shown):
            out.write(f"\n{len(findings) - len(shown)} more: run `rstdiag check` for the "
                      "full list.\n")
    if result.errors:
        out.write("\n#### Unreadable captures\n\n")
        for error in result.errors:
            out.write(f"- {code(error.file)}: {md(error.message)}\n")


def _rows(result: CheckResult) -> list[dict[str, object]]:
    """Every RST as in `read`, with what the check made of it."""
    return [{**verdict.to_dict(), "outcome": str(outcome)} for verdict, outcome in result.outcomes]


def write_jsonl(result: CheckResult, reports: Sequence[FileReport], out: TextIO) -> None:
    for row in _rows(result):
        out.write(json.dumps(row) + "\n")


def write_csv(result: CheckResult, reports: Sequence[FileReport], out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=(*CSV_FIELDS, "outcome"), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(_rows(result))


WRITERS = {"json": write_json, "jsonl": write_jsonl, "csv": write_csv, "junit": write_junit,
           "github": write_github, "markdown": write_markdown}
