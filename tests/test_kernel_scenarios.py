"""Real RSTs from a real kernel: each seed scenario of causes.md run in network namespaces,
captured with tcpdump, labelled by rstdiag, and checked against the kernel's own reason for
every RST it sent (tracepoint tcp:tcp_send_reset).

All scenarios start at once (threads, one lab each) when the module's first test asks for
one; each test then waits for its own. Needs root, ip netns, tcpdump and nft (skips
otherwise); the kernel-reason tests also need tracefs with events/tcp/tcp_send_reset.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from netlab import KernelReset, Segment, match_resets, read_segments
from scenarios import SCENARIOS, ScenarioResult, start_scenarios

pytestmark = pytest.mark.netns

# Which labels a RST may carry, given the reason the kernel gave for sending it. Observed on
# Linux 6.18 (see the scenarios): a segment that finds no connection gets NO_SOCKET when no
# socket at all owns the port, TCP_FLAGS (state TCP_LISTEN) when it reaches a listener, so
# both stand for closed port (NO_SOCKET only), half-open, follow-up, a late data-after-close
# and the client side of an aborted handshake, and TCP_FLAGS also for the accept-overflow
# flows whose SYN-cookie handshake the full queue never took in. SO_LINGER {1,0} gives
# TCP_STATE whichever side does it.
COMPATIBLE: dict[str, set[str]] = {
    "NO_SOCKET": {"closed-port", "half-open", "follow-up", "data-after-close", "client-abort"},
    "TCP_FLAGS": {"accept-overflow", "half-open", "follow-up", "data-after-close",
                  "client-abort"},
    "INVALID_SYN": {"accept-overflow"},
    "TCP_ABORT_ON_CLOSE": {"unread-data"},
    "TCP_DISCONNECT_WITH_DATA": {"unread-data"},
    "TCP_STATE": {"linger-abort", "client-abort"},
    "TCP_ABORT_ON_LINGER": {"linger-abort"},
    "TCP_ABORT_ON_DATA": {"data-after-close"},
    "TCP_TIMEWAIT_SOCKET": {"data-after-close"},
    "TCP_KEEPALIVE_TIMEOUT": {"keepalive-timeout"},
}
# The ambiguity the wire cannot settle is the verdict's own `alternatives`: a linger close right
# after reading a request that got no reply (TCP_STATE) looks exactly like unread data, and the
# verdict says unread-data with linger-abort as its alternative.

# Whether each scenario's RSTs took effect: every receiver went silent (accepted), except the
# closed-port RST the client's firewall dropped, after which the client retried its SYN, the
# in-window RST the server challenged, and the RST behind the window the server ignored.
EFFECTS: dict[str, list[str]] = {
    "closed-port-retry": ["ignored", "accepted"],
    "challenge-ack": ["challenged"],
    "challenge-ack-v6": ["challenged"],
    "rst-behind-window": ["ignored"],
    "rst-behind-window-v6": ["ignored"],
}


class Runs:
    def __init__(self, futures: dict[str, Future[ScenarioResult]]) -> None:
        self.futures = futures

    def __getitem__(self, name: str) -> ScenarioResult:
        if name not in self.futures:
            pytest.skip(f"{name} needs {', '.join(SCENARIOS[name].missing())}")
        return self.futures[name].result(timeout=120)


@pytest.fixture(scope="module")
def runs(requires_netns: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    outdir = tmp_path_factory.mktemp("kernel-scenarios")
    futures = start_scenarios([n for n, sc in SCENARIOS.items() if not sc.missing()], outdir)
    try:
        yield Runs(futures)
    finally:
        for future in futures.values():  # every lab is torn down before the session ends
            future.exception(timeout=120)


# ----------------------------------------------------------------------------- helpers


def _addr(text: str) -> str:
    return str(ipaddress.ip_address(text))


def verdicts(pcap: Path) -> list:
    from rstdiag.analysis import analyze_file

    return analyze_file(str(pcap)).verdicts


def rst_verdicts(pcap: Path, src: str | None = None) -> list:
    """The verdicts of a capture, those of RSTs sent from `src` only if given."""
    return [v for v in verdicts(pcap) if src is None or _addr(v.src) == _addr(src)]


def wire_rsts(pcap: Path, src: str | None = None) -> list[Segment]:
    return [s for s in read_segments(pcap) if s.rst and (src is None or s.src == _addr(src))]


def labels_and_senders(vs: list) -> list[tuple[str, str]]:
    return [(str(v.label), str(v.sender)) for v in vs]


# ----------------------------------------------------------------------------- behaviour


def test_syn_to_closed_port_is_labelled_closed_port(runs: Runs) -> None:
    r = runs["closed-port-v4"]
    assert len(wire_rsts(r.pcap)) == 1
    assert labels_and_senders(rst_verdicts(r.pcap)) == [("closed-port", "server")]


def test_syn_to_closed_port_over_ipv6_is_labelled_closed_port(runs: Runs) -> None:
    r = runs["closed-port-v6"]
    [rst] = wire_rsts(r.pcap)
    assert ":" in rst.src
    assert labels_and_senders(rst_verdicts(r.pcap)) == [("closed-port", "server")]


def test_each_retried_syn_to_a_closed_port_gets_a_closed_port_rst(runs: Runs) -> None:
    r = runs["closed-port-retry"]
    first, second = wire_rsts(r.pcap)
    assert (first.seq, first.ack) == (second.seq, second.ack)  # identical answers
    assert labels_and_senders(rst_verdicts(r.pcap)) == [("closed-port", "server")] * 2


def test_listener_resetting_deferred_connections_beyond_its_backlog_is_accept_overflow(
        runs: Runs) -> None:
    r = runs["accept-overflow"]
    resets = [line for line in r.log if line.endswith(" reset")]
    assert len(wire_rsts(r.pcap, r.server)) == len(resets) >= 1
    vs = rst_verdicts(r.pcap)
    assert labels_and_senders(vs) == [("accept-overflow", "server")] * len(resets)


def test_slow_acceptor_hit_by_a_connect_send_close_loop_shows_accept_overflow(
        runs: Runs) -> None:
    r = runs["accept-overflow-loop"]
    vs = rst_verdicts(r.pcap, r.server)
    assert vs
    assert {(str(v.label), str(v.sender)) for v in vs} == {("accept-overflow", "server")}


def test_linger_zero_close_after_the_reply_is_linger_abort(runs: Runs) -> None:
    r = runs["linger-abort"]
    assert labels_and_senders(rst_verdicts(r.pcap)) == [("linger-abort", "server")]


def test_linger_zero_close_of_an_unanswered_request_is_unread_data_or_linger_abort(
        runs: Runs) -> None:
    # the kernel says TCP_STATE (linger); the wire is that of unread data: the verdict names both
    r = runs["linger-noreply"]
    [v] = rst_verdicts(r.pcap)
    assert (str(v.label), str(v.sender), str(v.confidence)) == ("unread-data", "server", "medium")
    assert v.alternatives == ("linger-abort",)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_rst_takes_the_expected_effect(runs: Runs, name: str) -> None:
    r = runs[name]
    vs = rst_verdicts(r.pcap)
    expected = EFFECTS.get(name, ["accepted"] * len(vs))
    assert [str(v.effect) for v in vs] == expected


def test_close_with_unread_request_bytes_is_unread_data(runs: Runs) -> None:
    r = runs["unread-data"]
    assert labels_and_senders(rst_verdicts(r.pcap)) == [("unread-data", "server")]


@pytest.mark.parametrize("name", ["unread-data-sigkill", "unread-data-sigkill-v6"])
def test_killed_process_with_an_unread_request_is_unread_data_or_linger_abort(
        runs: Runs, name: str) -> None:
    r = runs[name]
    [v] = rst_verdicts(r.pcap)
    assert (str(v.label), str(v.sender), v.alternatives, str(v.effect)) == (
        "unread-data", "server", ("linger-abort",), "accepted")


LISTENER_CLOSED = ("the listener on :8080 closed at #{} (later SYNs get closed-port); "
                   "connections still queued were reset")


@pytest.mark.parametrize("name", ["listener-closed", "listener-closed-v6"])
def test_closing_a_listener_with_queued_connections_tells_it_on_every_rst(
        runs: Runs, name: str) -> None:
    r = runs[name]
    vs = rst_verdicts(r.pcap)
    assert [(str(v.label), str(v.sender), v.alternatives, str(v.effect)) for v in vs] == [
        ("unread-data", "server", ("linger-abort",), "accepted"),  # the queued one with a request
        ("linger-abort", "server", ("unread-data",), "accepted"),  # the queued one without
        ("closed-port", "server", (), "accepted"),  # the client that tried again
    ]
    story = LISTENER_CLOSED.format(vs[0].frame)
    assert all(story in v.evidence for v in vs)
    assert all("listener closed" in v.hint and "accept queue" in v.hint for v in vs)


def test_data_after_the_servers_close_is_data_after_close(runs: Runs) -> None:
    r = runs["data-after-close"]
    assert labels_and_senders(rst_verdicts(r.pcap)) == [("data-after-close", "server")]


def test_data_after_the_servers_shutdown_is_data_after_close(runs: Runs) -> None:
    r = runs["data-after-shutdown"]
    assert labels_and_senders(rst_verdicts(r.pcap)) == [("data-after-close", "server")]


def test_burst_after_the_servers_close_gets_data_after_close_then_follow_ups(
        runs: Runs) -> None:
    r = runs["follow-up"]
    assert len(wire_rsts(r.pcap)) == 3
    assert labels_and_senders(rst_verdicts(r.pcap)) == [
        ("data-after-close", "server"), ("follow-up", "server"), ("follow-up", "server")]


def test_request_to_a_server_that_lost_the_connection_is_half_open(runs: Runs) -> None:
    r = runs["half-open"]
    assert labels_and_senders(rst_verdicts(r.pcap)) == [("half-open", "server")]


def test_request_to_a_host_without_the_connection_or_the_service_is_half_open(
        runs: Runs) -> None:
    r = runs["half-open-noservice"]
    assert labels_and_senders(rst_verdicts(r.pcap)) == [("half-open", "server")]


def test_unanswered_keepalive_probes_end_in_keepalive_timeout(runs: Runs) -> None:
    r = runs["keepalive-timeout"]
    assert labels_and_senders(rst_verdicts(r.pcap)) == [("keepalive-timeout", "client")]


def test_firewall_reset_of_a_large_response_is_injected_in_the_clients_name(
        runs: Runs) -> None:
    r = runs["injected"]
    forged = wire_rsts(r.pcap, r.client)
    assert forged, "no RST claiming to be from the client reached the server"
    client_ttls = {s.ttl for s in read_segments(r.pcap) if s.src == r.client and not s.rst}
    assert all(s.ttl not in client_ttls for s in forged)
    vs = rst_verdicts(r.pcap, r.client)
    assert labels_and_senders(vs) == [("injected", "path")] * len(forged)
    # the server's own RST, when the client's FIN reaches the socket the forgery killed
    for v in rst_verdicts(r.pcap, r.server):
        assert (str(v.label), str(v.sender)) != ("injected", "path")


def test_firewall_reset_seen_from_the_client_side_blames_no_path(runs: Runs) -> None:
    r = runs["injected"]
    pcap = r.extra_pcaps["-client-side"]
    assert not wire_rsts(pcap, r.client)
    vs = rst_verdicts(pcap)
    assert vs and all(str(v.sender) == "server" for v in vs)


def test_port_probe_closing_with_linger_zero_is_client_abort(runs: Runs) -> None:
    r = runs["client-abort-probe"]
    assert labels_and_senders(rst_verdicts(r.pcap)) == [("client-abort", "client")]


def test_syn_scan_reset_is_client_abort(runs: Runs) -> None:
    r = runs["client-abort-scan"]
    assert labels_and_senders(rst_verdicts(r.pcap)) == [("client-abort", "client")]


def test_reset_of_a_late_syn_ack_after_connect_timeout_is_client_abort(runs: Runs) -> None:
    r = runs["client-abort-timeout"]
    assert labels_and_senders(rst_verdicts(r.pcap)) == [("client-abort", "client")]


def _verdict_lines(vs: list) -> list[tuple[str, str, tuple[str, ...], str]]:
    return [(str(v.label), str(v.sender), tuple(str(a) for a in v.alternatives), str(v.effect))
            for v in vs]


@pytest.mark.parametrize("name", ["nat-flush", "nat-flush-v6"])
def test_request_after_a_nat_lost_the_connection_is_half_open_on_both_sides(
        runs: Runs, name: str) -> None:
    r = runs[name]
    assert _verdict_lines(rst_verdicts(r.pcap)) == [("half-open", "server", (), "accepted")]
    server_side = rst_verdicts(r.extra_pcaps["-server-side"])
    assert _verdict_lines(server_side) == [("half-open", "server", (), "accepted")]
    # the server saw the request come from the client's own address, not the router's
    assert _addr(server_side[0].dst) == _addr(r.client)


@pytest.mark.parametrize("name", ["syn-flood-cookies", "syn-flood-cookies-v6"])
def test_overflows_under_a_syn_flood_answered_with_cookies_are_accept_overflow(
        runs: Runs, name: str) -> None:
    r = runs[name]
    assert any(line.startswith("srv TcpExt SyncookiesSent=") for line in r.log)
    vs = rst_verdicts(r.pcap)
    assert vs and all(_addr(v.src) == _addr(r.server) for v in vs)  # the flood drew no RST
    assert set(_verdict_lines(vs)) == {("accept-overflow", "server", (), "accepted")}


@pytest.mark.parametrize("name", ["user-timeout", "user-timeout-v6"])
def test_reply_to_a_client_whose_user_timeout_expired_is_half_open(
        runs: Runs, name: str) -> None:
    r = runs[name]
    [v] = rst_verdicts(r.pcap)
    assert _verdict_lines([v]) == [("half-open", "client", (), "accepted")]
    assert "TCP_USER_TIMEOUT" in v.evidence and "10 B never got acknowledged" in v.evidence


@pytest.mark.parametrize("name", ["challenge-ack", "challenge-ack-v6"])
def test_in_window_rst_that_is_not_exact_draws_a_challenge_ack(runs: Runs, name: str) -> None:
    r = runs[name]
    [v] = rst_verdicts(r.pcap)
    assert _verdict_lines([v]) == [("injected", "client", (), "challenged")]
    assert "1000 past the expected" in v.evidence and "challenge ACK" in v.evidence


@pytest.mark.parametrize("name", ["rst-behind-window", "rst-behind-window-v6"])
def test_rst_behind_the_window_after_the_clients_fin_is_ignored(runs: Runs, name: str) -> None:
    # seed 003 on a Linux receiver: one before the window would be accepted in CLOSE_WAIT
    r = runs[name]
    [v] = rst_verdicts(r.pcap)
    assert _verdict_lines([v]) == [("injected", "client", (), "ignored")]
    assert "100 before the server's window" in v.evidence
    assert "the server kept sending" in v.evidence


@pytest.mark.parametrize("name", ["haproxy-nolinger", "haproxy-nolinger-v6"])
def test_haproxy_nolinger_closing_an_idle_keepalive_connection_is_linger_abort(
        runs: Runs, name: str) -> None:
    r = runs[name]
    [v] = rst_verdicts(r.pcap)
    assert _verdict_lines([v]) == [("linger-abort", "server", ("unread-data",), "accepted")]
    assert "after its FIN" in v.evidence


# ----------------------------------------------------------------------------- kernel truth


def _captures(r: ScenarioResult) -> list[tuple[Path, int]]:
    """Each capture with the number of kernel resets allowed to be absent from it."""
    return [(r.pcap, r.firewalled)] + [(p, r.firewalled) for p in r.extra_pcaps.values()]


def _paired(r: ScenarioResult, pcap: Path, absent: int
            ) -> list[tuple[KernelReset, Segment]]:
    """The kernel resets paired with their wire RSTs; checks the harness saw what it should."""
    if not r.traced:
        pytest.skip("tcp:tcp_send_reset tracepoint not available")
    pairs, unexplained = match_resets(r.kernel_resets, read_segments(pcap))
    missing = [k for k, s in pairs if s is None]
    assert len(missing) <= absent, f"kernel resets not on the wire: {missing}"
    if r.forged_from is None:
        assert not unexplained, f"wire RSTs the kernel did not report: {unexplained}"
    else:  # the path's forgeries: never reported by the tracepoint
        assert all(s.src == _addr(r.forged_from) for s in unexplained)
        assert not any(k.src == _addr(r.forged_from) for k in r.kernel_resets)
    return [(k, s) for k, s in pairs if s is not None]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_kernel_rst_is_on_the_wire(runs: Runs, name: str) -> None:
    r = runs[name]
    if not r.traced:
        pytest.skip("tcp:tcp_send_reset tracepoint not available")
    # a scenario of forged RSTs alone (challenged or ignored) draws none from any kernel
    assert r.kernel_resets or r.forged_from is not None, "the kernel reported no RST"
    for pcap, absent in _captures(r):
        _paired(r, pcap, absent)
    if r.forged_from is not None:
        assert wire_rsts(r.pcap, r.forged_from), "no forged RST on the wire"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_kernel_reason_agrees_with_label(runs: Runs, name: str) -> None:
    r = runs[name]
    for pcap, absent in _captures(r):
        by_frame = {v.frame: v for v in verdicts(pcap)}
        for k, seg in _paired(r, pcap, absent):
            v = by_frame.get(seg.frame)
            assert v is not None, f"{pcap.name} frame {seg.frame}: RST without a verdict"
            allowed = COMPATIBLE.get(k.reason, set())
            said = {str(v.label)} | {str(a) for a in v.alternatives}
            assert said & allowed, (
                f"{pcap.name} frame {seg.frame}: label {v.label} ({v.evidence}) but the kernel "
                f"said {k.reason} in {k.state}, compatible with {sorted(allowed)}")
