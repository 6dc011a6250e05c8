"""contrib/: the systemd unit, the Prometheus scrape config and alert rules, the Grafana dashboard.

Checked with the real tools where they are installed (promtool from Debian's prometheus,
systemd-analyze; skipped otherwise), and the unit's own command line run as an unprivileged
user with only the unit's capabilities, in a network namespace lab.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from livereplay import latest
from netlab import Lab
from scenarios import SCENARIOS, Run

from rstdiag.metrics import LiveMetrics

ROOT = Path(__file__).resolve().parents[1]
CONTRIB = ROOT / "contrib"
UNIT = CONTRIB / "rstdiag.service"
# the command beside this Python (the venv's), which another user can run too
RSTDIAG = str(Path(sys.executable).with_name("rstdiag"))
NOBODY = 65534

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="needs promtool (Debian package prometheus)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)


# =============================================================================== Prometheus


@needs_promtool
def test_alert_rules_pass_promtool_check_rules() -> None:
    out = promtool("check", "rules", "contrib/alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 3 rules found" in out.stdout


@needs_promtool
def test_alerts_fire_on_overflows_drops_and_a_silent_host_and_not_otherwise() -> None:
    out = promtool("test", "rules", "tests/alerts_test.yml")
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_scrape_config_and_its_rule_files_pass_promtool_check_config() -> None:
    out = promtool("check", "config", "contrib/prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "is valid prometheus config file syntax" in out.stdout


# =============================================================================== expressions

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
            "and", "or", "unless"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not its functions, labels or keywords)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", e):  # not 5m of a duration
        if m.group() in KEYWORDS or e[m.end():].lstrip().startswith("("):
            continue
        names.add(m.group())
    return names


def exported_names() -> set[str]:
    """Every series name a `rstdiag live --metrics-port ... --kernel-reasons` endpoint has."""
    names = set()
    for family in LiveMetrics(max_ports=32, kernel_reasons=True).registry.collect():
        names |= {s.name for s in family.samples}
        if family.type == "counter":
            names.add(family.name + "_total")
        else:
            names.add(family.name)
    return names


def dashboard() -> dict[str, object]:
    return json.loads((CONTRIB / "grafana-dashboard.json").read_text())


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]  # type: ignore[index]


def alert_exprs() -> list[str]:
    return re.findall(r"^\s+expr: (.*)$", (CONTRIB / "alerts.yml").read_text(), re.M)


def test_metric_names_are_found_in_promql() -> None:
    expr = ('sum by (label, port) (rate(rstdiag_rsts_total{instance=~"$x", label="a"}'
            '[$__rate_interval])) / on (instance) group_left up offset 5m')
    assert metric_names(expr) == {"rstdiag_rsts_total", "up"}


def test_dashboard_reads_only_metrics_rstdiag_exports() -> None:
    exprs = dashboard_exprs()
    used = set().union(*(metric_names(e) for e in exprs))
    assert used <= exported_names(), used - exported_names()
    assert {"rstdiag_rsts_total", "rstdiag_packets_total", "rstdiag_dropped_packets_total"} <= used
    variables = dashboard()["templating"]["list"]  # type: ignore[index]
    queries = [v["definition"] for v in variables if v["type"] == "query"]
    assert all(re.fullmatch(r"label_values\((\w+), instance\)", q)[1] in exported_names()
               for q in queries)


def test_dashboard_shows_rsts_per_cause_per_port_over_time() -> None:
    panels = dashboard()["panels"]
    first = panels[0]  # type: ignore[index]
    assert first["type"] == "timeseries"
    assert re.fullmatch(r"sum by \(label, port\) \(rate\(rstdiag_rsts_total\{.*\}"
                        r"\[\$__rate_interval\]\)\)", first["targets"][0]["expr"])


def test_alert_rules_read_only_metrics_rstdiag_exports_or_prometheus_up() -> None:
    used = set().union(*(metric_names(e) for e in alert_exprs()))
    assert used <= exported_names() | {"up"}, used
    assert "rstdiag_rsts_total" in used and "rstdiag_dropped_packets_total" in used


# =============================================================================== the unit


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def unit_command(overrides: dict[str, str], log_dir: Path) -> list[str]:
    """ExecStart as systemd would run it: Environment= defaults, then `overrides`
    (EnvironmentFile=), ${VAR} one word, $VAR split on blanks; the installed rstdiag for
    /usr/local/bin/rstdiag and `log_dir` for LogsDirectory."""
    settings = unit_settings()
    env = dict(kv.split("=", 1) for value in settings["Environment"] for kv in value.split())
    env.update(overrides)
    words = []
    for word in shlex.split(settings["ExecStart"][0]):
        braced = re.fullmatch(r"\$\{(\w+)\}", word)
        bare = re.fullmatch(r"\$(\w+)", word)
        if braced:
            words.append(env[braced[1]])
        elif bare:
            words += shlex.split(env[bare[1]])
        else:
            words.append(word.replace(f"/var/log/{settings['LogsDirectory'][0]}", str(log_dir)))
    assert words[0] == "/usr/local/bin/rstdiag"
    return [RSTDIAG, *words[1:]]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "rstdiag.service"
    if not os.access(RSTDIAG, os.X_OK):
        pytest.skip(f"no {RSTDIAG}")
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/rstdiag", RSTDIAG))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_unit_runs_as_its_own_user_with_raw_sockets_only_and_restarts_on_failure() -> None:
    s = unit_settings()
    assert s["User"] == ["rstdiag"] and s["Restart"] == ["on-failure"]
    assert s["AmbientCapabilities"] == s["CapabilityBoundingSet"] == ["CAP_NET_RAW"]
    assert s["NoNewPrivileges"] == ["yes"] and "PrivateNetwork" not in s


def as_unit_user(caps: str) -> list[str]:
    """setpriv: the unit's User (nobody stands in for rstdiag) with only `caps`."""
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            f"--inh-caps=-all,{caps}", f"--ambient-caps=-all,{caps}",
            f"--bounding-set=-all,{caps}"]


@pytest.fixture
def log_dir() -> Iterator[Path]:
    """A LogsDirectory owned by the unit's user, where that user can reach it."""
    top = Path(tempfile.mkdtemp(prefix="rstdiag-unit-"))
    top.chmod(0o755)
    (top / "log").mkdir()
    os.chown(top / "log", NOBODY, NOBODY)
    try:
        yield top / "log"
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.netns
def test_units_command_explains_rsts_as_an_unprivileged_user_with_the_units_capabilities(
        requires_netns: None, log_dir: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv")
    caps = ",".join("+" + c.removeprefix("CAP_").lower()
                    for c in unit_settings()["AmbientCapabilities"][0].split())
    probe = subprocess.run([*as_unit_user(caps), RSTDIAG, "--version"], capture_output=True,
                           text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"another user cannot run {RSTDIAG} here: {probe.stderr.strip()}")
    command = unit_command({"RSTDIAG_INTERFACE": "eth0", "RSTDIAG_METRICS_PORT": "0"}, log_dir)
    with Lab("unit") as lab:
        run = Run(lab, v6=False)
        live = lab.popen(lab.cli.ns, *as_unit_user(caps), *command, name="rstdiag as the unit",
                         stdin=False)
        live.expect_err("listening on eth0", timeout=20)
        SCENARIOS["closed-port-v4"].body(run)
        live.popen.send_signal(signal.SIGTERM)  # systemctl stop
        status = live.wait(20)
    assert str(status) in unit_settings()["SuccessExitStatus"][0].split(), live.stderr_log
    log = log_dir / "rst.jsonl"
    logged = latest([json.loads(line) for line in log.read_text().splitlines()])
    assert [(v["label"], v["server"]) for v in logged.values()] == [
        ("closed-port", f"{run.server}:8080")]
    assert all(v["host"] for v in logged.values())
    assert log.stat().st_uid == NOBODY
