"""The classifier, one rule at a time, on conversations written by hand (through the engine)."""

from __future__ import annotations

from conversation import Conversation, handshake


def test_rst_ack_answering_a_syn_is_closed_port() -> None:
    c = Conversation().client("S", seq=1000).server("RA", seq=0, ack=1001)
    [v] = c.verdicts()
    assert (v.label, v.sender, v.confidence) == ("closed-port", "server", "high")


def test_each_retried_syn_to_a_closed_port_is_closed_port_again() -> None:
    c = Conversation().client("S", seq=1000).server("RA", ack=1001)
    c.client("S", seq=1000, gap=1.0).server("RA", ack=1001)
    assert c.labels() == ["closed-port", "closed-port"]


def test_closed_port_rst_with_a_ttl_unlike_the_hosts_other_flows_blames_the_path() -> None:
    c = Conversation()
    handshake(c)  # the server host answers this flow with TTL 64 ...
    other = Conversation(cport=40001)
    other.client("S", seq=7000).server("RA", ack=7001, ttl=254)  # ... a firewall with 254
    c.packets.extend(other.packets)
    [v] = c.verdicts()
    assert (v.label, v.sender) == ("closed-port", "path")


def test_bare_rst_at_isn_plus_one_after_the_handshake_is_accept_overflow() -> None:
    c = handshake(Conversation())
    c.client("PA", seq=1001, ack=5001, length=10)
    c.server("R", seq=5001)
    [v] = c.verdicts()
    assert (v.label, v.sender, v.confidence) == ("accept-overflow", "server", "medium")


def test_synack_resent_after_the_clients_ack_makes_accept_overflow_certain() -> None:
    c = handshake(Conversation())
    c.server("SA", seq=5000, ack=1001, gap=1.0)
    c.client("A", seq=1001, ack=5001)
    c.server("R", seq=5001, gap=3.0)
    [v] = c.verdicts()
    assert (v.label, v.confidence) == ("accept-overflow", "high")


def test_several_overflows_at_one_listener_within_seconds_are_high_confidence() -> None:
    burst = Conversation()
    for port in (40001, 40002, 40003):
        c = handshake(Conversation(cport=port))
        c.server("R", seq=5001)
        burst.packets.extend(c.packets)
    assert [v.confidence for v in burst.verdicts()] == ["high", "high", "high"]


def test_rst_ack_at_next_seq_after_everything_was_acked_is_linger_abort() -> None:
    c = handshake(Conversation())
    c.client("PA", seq=1001, ack=5001, length=20)
    c.server("PA", seq=5001, ack=1021, length=100)
    c.client("A", seq=1021, ack=5101)
    c.server("RA", seq=5101, ack=1021, gap=0.5)
    [v] = c.verdicts()
    assert (v.label, v.sender) == ("linger-abort", "server")


def test_rst_that_first_acknowledges_fresh_data_is_unread_data() -> None:
    c = handshake(Conversation())
    c.client("PA", seq=1001, ack=5001, length=10)
    c.server("RA", seq=5001, ack=1011)
    [v] = c.verdicts()
    assert (v.label, v.confidence) == ("unread-data", "high")


def test_request_acked_but_never_answered_then_rst_is_unread_data_or_linger_abort() -> None:
    c = handshake(Conversation())
    c.client("PA", seq=1001, ack=5001, length=10)
    c.server("A", seq=5001, ack=1011)
    c.server("RA", seq=5001, ack=1011)
    [v] = c.verdicts()
    assert (v.label, v.confidence, v.alternatives) == ("unread-data", "medium", ("linger-abort",))
    assert "SO_LINGER" in v.evidence


def test_data_arriving_after_the_senders_fin_is_data_after_close() -> None:
    c = handshake(Conversation())
    c.server("FA", seq=5001, ack=1001)
    c.client("A", seq=1001, ack=5002)
    c.client("PA", seq=1001, ack=5002, length=6, gap=2.0)
    c.server("R", seq=5002)
    [v] = c.verdicts()
    assert (v.label, v.sender, v.confidence) == ("data-after-close", "server", "high")


def test_second_rst_answering_more_data_is_follow_up() -> None:
    c = handshake(Conversation())
    c.server("FA", seq=5001, ack=1001)
    c.client("PA", seq=1001, ack=5002, length=6)
    c.server("R", seq=5002)
    c.client("FA", seq=1007, ack=5002)
    c.server("R", seq=5002)
    assert c.labels() == ["data-after-close", "follow-up"]


def test_bare_rst_after_a_long_silence_is_half_open() -> None:
    c = handshake(Conversation())
    c.client("PA", seq=1001, ack=5001, length=10)
    c.server("PA", seq=5001, ack=1011, length=10)
    c.client("PA", seq=1011, ack=5011, length=10, gap=600)
    c.server("R", seq=5011)
    [v] = c.verdicts()
    assert (v.label, v.confidence) == ("half-open", "high")


def test_bare_rst_answering_a_keepalive_probe_is_half_open() -> None:
    c = handshake(Conversation())
    c.client("A", seq=1000, ack=5001, gap=7200)
    c.server("R", seq=5001)
    [v] = c.verdicts()
    assert v.label == "half-open"


def test_unanswered_keepalive_probes_then_rst_is_keepalive_timeout() -> None:
    c = handshake(Conversation())
    for _ in range(3):
        c.client("A", seq=1000, ack=5001, gap=1.0)
    c.client("RA", seq=1001, ack=5001, gap=1.0)
    [v] = c.verdicts()
    assert (v.label, v.sender, v.confidence) == ("keepalive-timeout", "client", "high")


def test_rst_with_a_foreign_ttl_while_the_sender_keeps_talking_is_injected() -> None:
    c = handshake(Conversation())
    c.client("PA", seq=1001, ack=5001, length=100)
    c.server("RA", seq=5001, ack=1101, ttl=40, window=16)
    c.server("PA", seq=5001, ack=1101, length=500)
    [v] = c.verdicts()
    assert (v.label, v.sender, v.confidence) == ("injected", "path", "high")


def test_rst_from_the_syn_sender_answering_the_synack_is_client_abort() -> None:
    c = Conversation().client("S", seq=1000).server("SA", seq=5000, ack=1001)
    c.client("R", seq=1001)
    [v] = c.verdicts()
    assert (v.label, v.sender) == ("client-abort", "client")


def test_lone_rst_is_unknown_and_says_so() -> None:
    [v] = Conversation().server("R", seq=1234).verdicts()
    assert v.label == "unknown"
    assert "lone RST" in v.evidence


def test_rst_answering_an_mptcp_fastclose_is_explained_not_guessed() -> None:
    c = handshake(Conversation())
    c.client("A", seq=1001, ack=5001, fastclose=True)
    c.server("RA", seq=5001, ack=1001)
    [v] = c.verdicts()
    assert v.label == "unknown"
    assert "MP_FASTCLOSE" in v.evidence


def test_identical_copy_of_a_rst_inherits_its_label() -> None:
    c = Conversation().client("S", seq=1000).server("RA", ack=1001, ipid=77)
    c.server("RA", ack=1001, ipid=77, gap=0.000003)
    verdicts = c.verdicts()
    assert [v.label for v in verdicts] == ["closed-port", "closed-port"]
    assert verdicts[1].duplicate_of == verdicts[0].frame


def test_verdict_names_client_and_server_whatever_the_rst_direction() -> None:
    c = Conversation().client("S", seq=1000).server("RA", ack=1001)
    [v] = c.verdicts()
    assert (str(v.client), str(v.server)) == ("192.0.2.1:40000", "198.51.100.7:8080")
    assert (v.src, v.dst) == ("198.51.100.7", "192.0.2.1")
