"""The CI gate behind `rstdiag check`: which RSTs of a capture fail the build.

Pure logic, no printing: a `Policy` (the failing labels, the limit, what to ignore, an
optional baseline) and `evaluate(reports, policy)` giving a `CheckResult`. The CLI parses the
options with the `parse_*` helpers here and renders the result with rstdiag.ci_formats.

Every RST gets one `Outcome`, decided in this order:
  duplicate    an identical copy of an earlier RST (`duplicate_of` set): never counted;
  not-checked  neither its label nor one of its open alternatives is in `fail_on`;
  ignored      its flow matches an --ignore-flow or --ignore-port rule;
  accepted     the baseline accepts its (label, server port) and that entry's count is not used up;
  finding      everything else: counted against `max`.
The check passes when the findings are at most `max` and every capture could be read.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from .analysis import FileReport
from .labels import Endpoint, Label, Verdict

DEFAULT_FAIL_ON: frozenset[Label] = frozenset(Label) - {Label.CLOSED_PORT, Label.CLIENT_ABORT}
BASELINE_VERSION = 1


class GateError(ValueError):
    """An option value or baseline file that cannot be used; the message says why."""


class Outcome(StrEnum):
    FINDING = "finding"
    ACCEPTED = "accepted"
    IGNORED = "ignored"
    NOT_CHECKED = "not-checked"
    DUPLICATE = "duplicate"


# --- option parsing -----------------------------------------------------------------------

def valid_labels() -> str:
    return ", ".join(str(label) for label in Label)


def parse_labels(text: str) -> frozenset[Label]:
    """A comma list of label names (`injected,half-open`); unknown names raise GateError."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise GateError(f"no label given; valid labels: {valid_labels()}")
    known = {str(label): label for label in Label}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise GateError(f"unknown label{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(repr(n) for n in unknown)}; valid labels: {valid_labels()}")
    return frozenset(known[name] for name in names)


def ordered_labels(labels: Iterable[Label]) -> list[str]:
    """Labels in taxonomy order, as strings."""
    wanted = set(labels)
    return [str(label) for label in Label if label in wanted]


def _parse_port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise GateError(f"{what}: port must be a number from 0 to 65535, not {text!r}")
    return int(text)


_ENDPOINT = re.compile(r"\[(?P<v6>[^\]]+)\]:(?P<v6port>[^:\[\]]*)"
                       r"|(?P<v4>[^:\[\]]+):(?P<v4port>[^:\[\]]*)")


def _normal_addr(addr: str) -> str:
    """The canonical text of an IP address (IPv6 compressed, lower case); else as given."""
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).compressed
    except ValueError:
        return addr


def _parse_endpoint(text: str, rule: str) -> tuple[str, int]:
    match = _ENDPOINT.fullmatch(text)
    if match is None:
        raise GateError(f"{rule!r}: expected HOST:PORT, or [IPv6]:PORT")
    addr = match.group("v6") or match.group("v4")
    port = match.group("v6port") if match.group("v6") else match.group("v4port")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise GateError(f"{rule!r}: {addr!r} is not an IP address") from None
    if match.group("v6") and ip.version != 6:
        raise GateError(f"{rule!r}: brackets are for IPv6 addresses")
    return ip.compressed, _parse_port(port, repr(rule))


@dataclass(slots=True, frozen=True)
class FlowRule:
    """`HOST:PORT` matches a flow with that endpoint on either side; `A-B` the flow between
    the endpoints A and B, in either direction."""

    a: tuple[str, int]
    b: tuple[str, int] | None = None

    def matches(self, client: Endpoint, server: Endpoint) -> bool:
        ends = ((_normal_addr(client.addr), client.port), (_normal_addr(server.addr), server.port))
        if self.b is None:
            return self.a in ends
        return (self.a, self.b) in (ends, ends[::-1])

    def __str__(self) -> str:
        def show(end: tuple[str, int]) -> str:
            return str(Endpoint(*end))

        return show(self.a) if self.b is None else f"{show(self.a)}-{show(self.b)}"


def parse_flow_rule(text: str) -> FlowRule:
    """`HOST:PORT`, `HOST:PORT-HOST:PORT`; IPv6 as `[addr]:port`."""
    rule = text.strip()
    # split on a '-' outside brackets (IPv4 and bracketed IPv6 addresses have none)
    depth, cut = 0, -1
    for i, ch in enumerate(rule):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "-" and depth == 0:
            if cut >= 0:
                raise GateError(f"{rule!r}: expected HOST:PORT or "
                                "HOST:PORT-HOST:PORT")
            cut = i
    if cut < 0:
        return FlowRule(_parse_endpoint(rule, rule))
    return FlowRule(_parse_endpoint(rule[:cut], rule), _parse_endpoint(rule[cut + 1:], rule))


# --- baseline -----------------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class Baseline:
    """Accepted RSTs: how many RSTs of each (label, server port) do not count as findings."""

    accepted: dict[tuple[Label, int], int] = field(default_factory=dict)

    @classmethod
    def from_verdicts(cls, verdicts: Iterable[Verdict]) -> Baseline:
        counts = Counter((v.label, v.server.port) for v in verdicts if v.duplicate_of is None)
        return cls(dict(counts))

    def to_dict(self) -> dict[str, object]:
        order = {label: i for i, label in enumerate(Label)}
        keys = sorted(self.accepted, key=lambda k: (order[k[0]], k[1]))
        return {
            "rstdiag_baseline": BASELINE_VERSION,
            "rule": "an RST is accepted when its (label, server_port) is listed here, up to "
                    "count RSTs per entry over all the captures of one check",
            "accepted": [{"label": str(label), "server_port": port,
                          "count": self.accepted[(label, port)]} for label, port in keys],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.dumps(), encoding="utf-8")

    @classmethod
    def loads(cls, text: str, name: str = "baseline") -> Baseline:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GateError(f"{name}: not JSON ({exc})") from None
        if not isinstance(doc, dict) or "rstdiag_baseline" not in doc:
            raise GateError(f"{name}: not an rstdiag baseline (written by --write-baseline)")
        if doc["rstdiag_baseline"] != BASELINE_VERSION:
            raise GateError(f"{name}: baseline version {doc['rstdiag_baseline']!r} "
                            f"unsupported (this rstdiag reads version {BASELINE_VERSION})")
        entries = doc.get("accepted")
        if not isinstance(entries, list):
            raise GateError(f"{name}: 'accepted' must be a list")
        known = {str(label): label for label in Label}
        accepted: dict[tuple[Label, int], int] = {}
        for n, entry in enumerate(entries, 1):
            where = f"{name}: accepted entry {n}"
            if not isinstance(entry, dict):
                raise GateError(f"{where}: must be an object")
            label, port, count = entry.get("label"), entry.get("server_port"), entry.get("count")
            if label not in known:
                raise GateError(f"{where}: unknown label {label!r}; valid labels: "
                                f"{valid_labels()}")
            if type(port) is not int or not 0 <= port <= 65535:
                raise GateError(f"{where}: server_port must be a port number")
            if type(count) is not int or count < 0:
                raise GateError(f"{where}: count must be a number >= 0")
            key = (known[label], port)
            accepted[key] = accepted.get(key, 0) + count
        return cls(accepted)

    @classmethod
    def load(cls, path: str | Path) -> Baseline:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise GateError(f"{path}: cannot read the baseline ({reason})") from None
        return cls.loads(text, str(path))


# --- policy and evaluation ----------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class Policy:
    fail_on: frozenset[Label] = DEFAULT_FAIL_ON
    max: int = 0
    ignore_flows: tuple[FlowRule, ...] = ()
    ignore_ports: frozenset[int] = frozenset()
    baseline: Baseline | None = None

    def ignores(self, verdict: Verdict) -> bool:
        if verdict.server.port in self.ignore_ports:
            return True
        return any(rule.matches(verdict.client, verdict.server) for rule in self.ignore_flows)


@dataclass(slots=True, frozen=True)
class InputError:
    """A capture that could not be read."""

    file: str
    message: str


@dataclass(slots=True)
class FileOutcomes:
    """The outcome of every RST of one capture, in frame order (kept for junit and tests)."""

    path: str
    outcomes: list[tuple[Verdict, Outcome]] = field(default_factory=list)


SAMPLES_PER_CAUSE = 10  # offending RSTs kept per (capture, cause): github's annotations
FIRST_FINDINGS = 20  # offending RSTs kept in order: markdown's list


@dataclass(slots=True)
class CheckResult:
    """What the check made of the RSTs: counts by outcome, the findings by cause, compact
    (file, frame, cause) of every finding, and a few offending verdicts to quote. With `keep`
    (junit, the library), every RST's outcome too, per file."""

    policy: Policy
    files: list[FileOutcomes] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    keep: bool = True
    keep_offending: bool = True  # the (file, frame, cause) of every finding, for json
    accept_all: bool = False  # --write-baseline: what would be a finding is accepted
    interrupted: bool = False
    counts: Counter[Outcome] = field(default_factory=Counter)
    finding_labels: Counter[Label] = field(default_factory=Counter)
    offending: list[tuple[str, int, Label]] = field(default_factory=list)
    samples: dict[tuple[str, Label], list[Verdict]] = field(default_factory=dict)
    first_findings: list[Verdict] = field(default_factory=list)
    outcomes_by_label: dict[Label, Counter[Outcome]] = field(default_factory=dict)
    captures: list[str] = field(default_factory=list)
    counted: Counter[tuple[Label, int]] = field(default_factory=Counter)
    per_capture: Counter[tuple[str, Label]] = field(default_factory=Counter)  # findings
    _remaining: dict[tuple[Label, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.policy.baseline is not None and not self._remaining:
            self._remaining = dict(self.policy.baseline.accepted)

    def judge(self, verdict: Verdict) -> Outcome:
        """The outcome of the next RST (in file and frame order), counted."""
        policy = self.policy
        if verdict.duplicate_of is not None:
            outcome = Outcome.DUPLICATE
        elif not verdict.is_any_of(policy.fail_on):
            outcome = Outcome.NOT_CHECKED
        elif policy.ignores(verdict):
            outcome = Outcome.IGNORED
        elif self._remaining.get(key := (verdict.label, verdict.server.port), 0) > 0:
            self._remaining[key] -= 1
            outcome = Outcome.ACCEPTED
        else:
            outcome = Outcome.ACCEPTED if self.accept_all else Outcome.FINDING
        if outcome in (Outcome.FINDING, Outcome.ACCEPTED):
            self.counted[(verdict.label, verdict.server.port)] += 1
        self.counts[outcome] += 1
        self.outcomes_by_label.setdefault(verdict.label, Counter())[outcome] += 1
        if not self.captures or self.captures[-1] != verdict.file:
            self.captures.append(verdict.file)
        if outcome is Outcome.FINDING:
            self.finding_labels[verdict.label] += 1
            self.per_capture[(verdict.file, verdict.label)] += 1
            if self.keep_offending:
                self.offending.append((verdict.file, verdict.frame, verdict.label))
            sample = self.samples.setdefault((verdict.file, verdict.label), [])
            if len(sample) < SAMPLES_PER_CAUSE:
                sample.append(verdict)
            if len(self.first_findings) < FIRST_FINDINGS:
                self.first_findings.append(verdict)
        if self.keep:
            if not self.files or self.files[-1].path != verdict.file:
                self.files.append(FileOutcomes(verdict.file))
            self.files[-1].outcomes.append((verdict, outcome))
        return outcome

    @property
    def outcomes(self) -> list[tuple[Verdict, Outcome]]:
        return [pair for f in self.files for pair in f.outcomes]

    def _with(self, outcome: Outcome) -> list[Verdict]:
        return [v for v, o in self.outcomes if o is outcome]

    @property
    def findings(self) -> list[Verdict]:
        """The RSTs counted against the limit, in file and frame order (kept results)."""
        return self._with(Outcome.FINDING)

    @property
    def accepted(self) -> list[Verdict]:
        return self._with(Outcome.ACCEPTED)

    @property
    def ignored(self) -> list[Verdict]:
        return self._with(Outcome.IGNORED)

    @property
    def not_checked(self) -> list[Verdict]:
        return self._with(Outcome.NOT_CHECKED)

    @property
    def finding_count(self) -> int:
        return self.counts[Outcome.FINDING]

    @property
    def duplicates(self) -> int:
        return self.counts[Outcome.DUPLICATE]

    @property
    def by_label(self) -> dict[str, int]:
        """Findings by label, in taxonomy order."""
        return {str(label): self.finding_labels[label] for label in Label
                if self.finding_labels[label]}

    @property
    def over_limit(self) -> bool:
        return self.finding_count > self.policy.max

    @property
    def passed(self) -> bool:
        return not self.over_limit and not self.errors and not self.interrupted

    def baseline(self) -> Baseline:
        """What `--write-baseline` writes: every RST this policy would count, without a
        baseline (the findings and the RSTs an existing baseline accepted)."""
        return Baseline(dict(self.counted))

    def to_dict(self) -> dict[str, object]:
        """The "check" object of `check --format json`."""
        return {
            "passed": self.passed,
            "interrupted": self.interrupted,
            "fail_on": ordered_labels(self.policy.fail_on),
            "max": self.policy.max,
            "findings": self.finding_count,
            "by_label": self.by_label,
            "accepted_by_baseline": self.counts[Outcome.ACCEPTED],
            "ignored": self.counts[Outcome.IGNORED],
            "not_checked": self.counts[Outcome.NOT_CHECKED],
            "duplicates": self.duplicates,
            "offending": [{"file": f, "frame": n, "label": str(label)}
                          for f, n, label in self.offending],
            "errors": [{"file": e.file, "error": e.message} for e in self.errors],
        }


def evaluate(reports: Sequence[FileReport], policy: Policy,
             errors: Sequence[InputError] = ()) -> CheckResult:
    """Decide the outcome of every RST of `reports` under `policy` (see the module doc)."""
    result = CheckResult(policy, errors=list(errors))
    for report in reports:
        result.files.append(FileOutcomes(report.path))
        result.captures.append(report.path)
        for verdict in report.verdicts:
            result.judge(replace(verdict, file=report.path) if verdict.file != report.path
                         else verdict)
    return result
