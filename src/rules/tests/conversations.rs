//! Conversations written by hand, with the verdicts rstdiag's Python engine gives them
//! (generated: each run through FlowTracker, classify, as_duplicate and refine_bursts as
//! tests/conversation.py does). Line syntax: see `packets` in the parent module.

use super::{check, Expected};

#[test]
fn rst_ack_answering_a_syn_is_closed_port() {
    check(
        &[r##"c S seq=1000"##, r##"s RA seq=0 ack=1001"##],
        &[Expected {
            frame: 2,
            label: r##"closed-port"##,
            sender: r##"server"##,
            confidence: r##"high"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"RST+ACK answers SYN #1 (ack = its seq + 1) 1.0 ms later; no SYN+ACK: nothing listens on that port"##,
        }],
    );
}

#[test]
fn each_retried_syn_to_a_closed_port_is_closed_port_again() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s RA ack=1001"##,
            r##"c S seq=1000 gap=1.0"##,
            r##"s RA ack=1001"##,
        ],
        &[
            Expected {
                frame: 2,
                label: r##"closed-port"##,
                sender: r##"server"##,
                confidence: r##"high"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40000"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"RST+ACK answers SYN #1 (ack = its seq + 1) 1.0 ms later; no SYN+ACK: nothing listens on that port; the RST was ignored: the client retransmitted after it (#3 S seq=0)"##,
            },
            Expected {
                frame: 4,
                label: r##"closed-port"##,
                sender: r##"server"##,
                confidence: r##"high"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40000"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"RST+ACK answers SYN #3 (ack = its seq + 1) 1.0 ms later; no SYN+ACK; the SYN was tried 2 times: nothing listens on that port"##,
            },
        ],
    );
}

#[test]
fn closed_port_rst_with_a_ttl_unlike_the_hosts_other_flows_blames_the_path() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c S seq=7000 cport=40001 frame=1 t=1000.001 ipid=101"##,
            r##"s RA ack=7001 ttl=254 cport=40001 frame=2 t=1000.002 ipid=5001"##,
        ],
        &[Expected {
            frame: 2,
            label: r##"closed-port"##,
            sender: r##"path"##,
            confidence: r##"medium"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40001"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"RST+ACK answers SYN #1 (ack = its seq + 1) 1.0 ms later; no SYN+ACK; TTL 254 differs from that host's TTL 64 in other flows: likely a firewall REJECT in the path"##,
        }],
    );
}

#[test]
fn closed_port_rst_earlier_than_its_syn_shows_a_negative_delay() {
    check(
        &[r##"c S seq=1000"##, r##"s RA ack=1001 gap=-0.0005"##],
        &[Expected {
            frame: 2,
            label: r##"closed-port"##,
            sender: r##"server"##,
            confidence: r##"high"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"RST+ACK answers SYN #1 (ack = its seq + 1) -0.5 ms later; no SYN+ACK: nothing listens on that port"##,
        }],
    );
}

#[test]
fn bare_rst_at_isn_plus_one_after_the_handshake_is_accept_overflow() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=10"##,
            r##"s R seq=5001"##,
        ],
        &[Expected {
            frame: 5,
            label: r##"accept-overflow"##,
            sender: r##"server"##,
            confidence: r##"medium"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the client completed the handshake and sent 10 B; the listener answered with a bare RST at its ISN+1 instead of accepting: the accept queue was full"##,
        }],
    );
}

#[test]
fn synack_resent_after_the_clients_ack_makes_accept_overflow_certain() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"s SA seq=5000 ack=1001 gap=1.0"##,
            r##"c A seq=1001 ack=5001"##,
            r##"s R seq=5001 gap=3.0"##,
        ],
        &[Expected {
            frame: 6,
            label: r##"accept-overflow"##,
            sender: r##"server"##,
            confidence: r##"high"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the client completed the handshake; the listener answered with a bare RST at its ISN+1 instead of accepting; it had re-sent its SYN+ACK although the client ACKed: the accept queue was full"##,
        }],
    );
}

#[test]
fn rst_ack_at_next_seq_after_everything_was_acked_is_linger_abort() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=20"##,
            r##"s PA seq=5001 ack=1021 len=100"##,
            r##"c A seq=1021 ack=5101"##,
            r##"s RA seq=5101 ack=1021 gap=0.5"##,
        ],
        &[Expected {
            frame: 7,
            label: r##"linger-abort"##,
            sender: r##"server"##,
            confidence: r##"medium"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"RST+ACK from the server with no FIN, at its next sequence number, everything it received already acknowledged: an abortive close (SO_LINGER {1,0} or abort()), or a close with received data unread (the wire cannot tell them apart); the wire also allows: unread-data"##,
        }],
    );
}

#[test]
fn rst_ack_past_the_senders_next_seq_after_its_fin_is_low_confidence_linger_abort() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"s FA seq=5001 ack=1001"##,
            r##"c A seq=1001 ack=5002"##,
            r##"s RA seq=5010 ack=1001"##,
        ],
        &[Expected {
            frame: 6,
            label: r##"linger-abort"##,
            sender: r##"server"##,
            confidence: r##"low"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"RST+ACK from the server after its FIN #4, at its next sequence number, everything it received already acknowledged: an abortive close (SO_LINGER {1,0} or abort()), or a close with received data unread (the wire cannot tell them apart); the wire also allows: unread-data"##,
        }],
    );
}

#[test]
fn rst_that_first_acknowledges_fresh_data_is_unread_data() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=10"##,
            r##"s RA seq=5001 ack=1011"##,
        ],
        &[Expected {
            frame: 5,
            label: r##"unread-data"##,
            sender: r##"server"##,
            confidence: r##"high"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the RST is the first acknowledgement of 10 B from the peer: data arrived and the application closed without reading it"##,
        }],
    );
}

#[test]
fn request_acked_but_never_answered_then_rst_is_medium_unread_data() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=10"##,
            r##"s A seq=5001 ack=1011"##,
            r##"s RA seq=5001 ack=1011"##,
        ],
        &[Expected {
            frame: 6,
            label: r##"unread-data"##,
            sender: r##"server"##,
            confidence: r##"medium"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the request (#4, acknowledged) got no reply before the server's RST+ACK: closed with the request unread, or an SO_LINGER {1,0} close right after reading it (the wire cannot tell them apart); the wire also allows: linger-abort"##,
        }],
    );
}

#[test]
fn rst_ack_answering_the_peers_fin_is_medium_unread_data() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c FA seq=1001 ack=5001"##,
            r##"s RA seq=5001 ack=1002"##,
        ],
        &[Expected {
            frame: 5,
            label: r##"unread-data"##,
            sender: r##"server"##,
            confidence: r##"medium"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the peer's FIN arrived and was answered by RST+ACK instead of a FIN: the application closed with received data still unread, or with SO_LINGER {1,0} (the wire cannot tell them apart); the wire also allows: linger-abort"##,
        }],
    );
}

#[test]
fn data_arriving_after_the_senders_fin_is_data_after_close() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"s FA seq=5001 ack=1001"##,
            r##"c A seq=1001 ack=5002"##,
            r##"c PA seq=1001 ack=5002 len=6 gap=2.0"##,
            r##"s R seq=5002"##,
        ],
        &[Expected {
            frame: 7,
            label: r##"data-after-close"##,
            sender: r##"server"##,
            confidence: r##"high"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the server had closed (FIN #4); the peer then sent 6 B of data (#6) and the RST answers it"##,
        }],
    );
}

#[test]
fn fin_arriving_after_the_senders_fin_is_data_after_close() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"s FA seq=5001 ack=1001"##,
            r##"c FA seq=1001 ack=5002 gap=1"##,
            r##"s R seq=5002"##,
        ],
        &[Expected {
            frame: 6,
            label: r##"data-after-close"##,
            sender: r##"server"##,
            confidence: r##"high"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the server had closed (FIN #4); the peer then sent a FIN (#5) and the RST answers it"##,
        }],
    );
}

#[test]
fn data_crossing_the_senders_fin_is_medium_data_after_close() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=10"##,
            r##"s FA seq=5001 ack=1001"##,
            r##"s R seq=5002"##,
        ],
        &[Expected {
            frame: 6,
            label: r##"data-after-close"##,
            sender: r##"server"##,
            confidence: r##"medium"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the server had closed (FIN #5) while the peer's data/FIN crossed it unacknowledged; the RST answers #4"##,
        }],
    );
}

#[test]
fn second_rst_answering_more_data_is_follow_up() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"s FA seq=5001 ack=1001"##,
            r##"c PA seq=1001 ack=5002 len=6"##,
            r##"s R seq=5002"##,
            r##"c FA seq=1007 ack=5002"##,
            r##"s R seq=5002"##,
        ],
        &[
            Expected {
                frame: 6,
                label: r##"data-after-close"##,
                sender: r##"server"##,
                confidence: r##"high"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40000"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"the server had closed (FIN #4); the peer then sent 6 B of data (#5) and the RST answers it"##,
            },
            Expected {
                frame: 8,
                label: r##"follow-up"##,
                sender: r##"server"##,
                confidence: r##"high"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40000"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"further RST from the server after its RST #6, answering #7 F. seq=7"##,
            },
        ],
    );
}

#[test]
fn bare_rst_after_a_long_silence_is_half_open() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=10"##,
            r##"s PA seq=5001 ack=1011 len=10"##,
            r##"c PA seq=1011 ack=5011 len=10 gap=600"##,
            r##"s R seq=5011"##,
        ],
        &[Expected {
            frame: 7,
            label: r##"half-open"##,
            sender: r##"server"##,
            confidence: r##"high"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"bare RST from the server answering #6 P. 10 B seq=11: it answers the first segment after 600 s of silence; the peer still believes in the connection"##,
        }],
    );
}

#[test]
fn bare_rst_answering_a_keepalive_probe_is_half_open() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c A seq=1000 ack=5001 gap=7200"##,
            r##"s R seq=5001"##,
        ],
        &[Expected {
            frame: 5,
            label: r##"half-open"##,
            sender: r##"server"##,
            confidence: r##"high"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"bare RST from the server answering #4 . seq=0: it answers the peer's keepalive probe #4; the peer still believes in the connection"##,
        }],
    );
}

#[test]
fn bare_rst_at_an_ack_the_sender_never_reached_is_half_open() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=10"##,
            r##"s PA seq=5001 ack=1011 len=10"##,
            r##"c PA seq=1011 ack=7000 len=5"##,
            r##"s R seq=7000"##,
        ],
        &[Expected {
            frame: 7,
            label: r##"half-open"##,
            sender: r##"server"##,
            confidence: r##"medium"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"bare RST from the server answering #6 P. 5 B seq=11: the segment acknowledges 2000, which the server never sent (its next is 11): it belongs to a connection the sender does not have; the peer still believes in the connection"##,
        }],
    );
}

#[test]
fn bare_rst_at_the_segments_ack_is_medium_half_open() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=10"##,
            r##"s PA seq=5001 ack=1011 len=10"##,
            r##"c PA seq=1011 ack=5011 len=10"##,
            r##"s R seq=5011"##,
        ],
        &[Expected {
            frame: 7,
            label: r##"half-open"##,
            sender: r##"server"##,
            confidence: r##"medium"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"bare RST from the server answering #6 P. 10 B seq=11: a bare RST at the segment's own ack number, as a stack without the connection sends; the peer still believes in the connection"##,
        }],
    );
}

#[test]
fn bare_rst_from_a_side_never_seen_is_half_open() {
    check(
        &[r##"c PA seq=1001 ack=5001 len=10"##, r##"s R seq=5001"##],
        &[Expected {
            frame: 2,
            label: r##"half-open"##,
            sender: r##"server"##,
            confidence: r##"medium"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"bare RST from the server answering #1 P. 10 B seq=1: the sender shows no trace of this connection in the capture; the peer still believes in the connection (roles guessed: the handshake is not in the capture)"##,
        }],
    );
}

#[test]
fn bare_rst_after_rsts_forged_in_the_senders_name_is_half_open() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=10"##,
            r##"s PA seq=5001 ack=1011 len=5"##,
            r##"s R seq=5006 ttl=40"##,
            r##"c PA seq=1011 ack=5006 len=10 gap=0.01"##,
            r##"s R seq=5006"##,
        ],
        &[
            Expected {
                frame: 6,
                label: r##"injected"##,
                sender: r##"path"##,
                confidence: r##"medium"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40000"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"forged in the server's name: TTL 40 but the server's own packets have TTL 64; the RST was ignored: the client kept sending after it (#7 P. 10 B seq=11): the RST, at the expected sequence number, did not reach its stack"##,
            },
            Expected {
                frame: 8,
                label: r##"half-open"##,
                sender: r##"server"##,
                confidence: r##"medium"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40000"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"bare RST from the server answering #7 P. 10 B seq=11: RSTs were forged in the server's name (#6) and its own stack has lost the connection too; the peer still believes in the connection"##,
            },
        ],
    );
}

#[test]
fn bare_rst_answering_after_the_peers_forged_rst_is_half_open() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=10"##,
            r##"s R seq=5001 ttl=40"##,
            r##"s PA seq=5001 ack=1011 len=20"##,
            r##"c R seq=1011"##,
        ],
        &[
            Expected {
                frame: 5,
                label: r##"injected"##,
                sender: r##"path"##,
                confidence: r##"high"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40000"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"forged in the server's name: TTL 40 but the server's own packets have TTL 64; the server kept talking after it (#6)"##,
            },
            Expected {
                frame: 7,
                label: r##"half-open"##,
                sender: r##"client"##,
                confidence: r##"high"##,
                src: r##"192.0.2.1"##,
                dst: r##"198.51.100.7"##,
                client: r##"192.0.2.1:40000"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"bare RST answering #6 P. 20 B seq=1: the connection was already reset in the peer's name (#5, possibly forged) so the client no longer knows it, while the real peer still does"##,
            },
        ],
    );
}

#[test]
fn unanswered_keepalive_probes_then_rst_is_keepalive_timeout() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c A seq=1000 ack=5001 gap=1.0"##,
            r##"c A seq=1000 ack=5001 gap=1.0"##,
            r##"c A seq=1000 ack=5001 gap=1.0"##,
            r##"c RA seq=1001 ack=5001 gap=1.0"##,
        ],
        &[Expected {
            frame: 7,
            label: r##"keepalive-timeout"##,
            sender: r##"client"##,
            confidence: r##"high"##,
            src: r##"192.0.2.1"##,
            dst: r##"198.51.100.7"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"3 keepalive probe(s) from the client since #4 (3.0 s) got no answer; then it gave up with a RST"##,
        }],
    );
}

#[test]
fn one_unanswered_keepalive_probe_then_rst_is_medium_keepalive_timeout() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c A seq=1000 ack=5001 gap=75"##,
            r##"c RA seq=1001 ack=5001 gap=75"##,
        ],
        &[Expected {
            frame: 5,
            label: r##"keepalive-timeout"##,
            sender: r##"client"##,
            confidence: r##"medium"##,
            src: r##"192.0.2.1"##,
            dst: r##"198.51.100.7"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"1 keepalive probe(s) from the client since #4 (75.0 s) got no answer; then it gave up with a RST"##,
        }],
    );
}

#[test]
fn rst_with_a_foreign_ttl_while_the_sender_keeps_talking_is_injected() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=100"##,
            r##"s RA seq=5001 ack=1101 ttl=40 win=16"##,
            r##"s PA seq=5001 ack=1101 len=500"##,
        ],
        &[Expected {
            frame: 5,
            label: r##"injected"##,
            sender: r##"path"##,
            confidence: r##"high"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"forged in the server's name: TTL 40 but the server's own packets have TTL 64; the server kept talking after it (#6); odd window 16"##,
        }],
    );
}

#[test]
fn rst_while_the_sender_keeps_talking_with_its_own_ttl_is_medium_injected() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=10"##,
            r##"s RA seq=5001 ack=1011"##,
            r##"s PA seq=5001 ack=1011 len=5"##,
        ],
        &[Expected {
            frame: 5,
            label: r##"injected"##,
            sender: r##"server"##,
            confidence: r##"medium"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the server kept the connection going after 'its' RST (#6 P. 5 B seq=1): not the owning stack's teardown (a device in the path, or an endpoint crafting packets)"##,
        }],
    );
}

#[test]
fn rst_from_the_syn_sender_answering_the_synack_is_client_abort() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c R seq=1001"##,
        ],
        &[Expected {
            frame: 3,
            label: r##"client-abort"##,
            sender: r##"client"##,
            confidence: r##"high"##,
            src: r##"192.0.2.1"##,
            dst: r##"198.51.100.7"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the client answered the SYN+ACK #2 with a RST instead of completing the handshake (a stealth SYN scan, or a client that gave up)"##,
        }],
    );
}

#[test]
fn rst_from_the_syn_sender_before_any_answer_is_client_abort() {
    check(
        &[r##"c S seq=1000"##, r##"c R seq=1001"##],
        &[Expected {
            frame: 2,
            label: r##"client-abort"##,
            sender: r##"client"##,
            confidence: r##"high"##,
            src: r##"192.0.2.1"##,
            dst: r##"198.51.100.7"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the client reset its own SYN before any answer (scan or connect given up)"##,
        }],
    );
}

#[test]
fn rst_from_the_client_right_after_the_handshake_is_medium_client_abort() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"s A seq=5001 ack=1001"##,
            r##"c R seq=1001"##,
        ],
        &[Expected {
            frame: 5,
            label: r##"client-abort"##,
            sender: r##"client"##,
            confidence: r##"medium"##,
            src: r##"192.0.2.1"##,
            dst: r##"198.51.100.7"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the client reset right after the handshake without sending data (connect scan, port probe, or health check)"##,
        }],
    );
}

#[test]
fn lone_rst_is_unknown_and_says_so() {
    check(
        &[r##"s R seq=1234"##],
        &[Expected {
            frame: 1,
            label: r##"unknown"##,
            sender: r##"server"##,
            confidence: r##"low"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"lone RST: no earlier packet of this flow in the capture; its start was not captured, or it is backscatter of a spoofed scan: nothing to infer a cause from"##,
        }],
    );
}

#[test]
fn lone_rsts_count_the_other_rsts() {
    check(
        &[r##"s R seq=1234"##, r##"s R seq=1300 gap=1.0"##],
        &[
            Expected {
                frame: 1,
                label: r##"unknown"##,
                sender: r##"server"##,
                confidence: r##"low"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40000"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"lone RST: no earlier packet of this flow in the capture; its start was not captured, or it is backscatter of a spoofed scan: nothing to infer a cause from"##,
            },
            Expected {
                frame: 2,
                label: r##"unknown"##,
                sender: r##"server"##,
                confidence: r##"low"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40000"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"lone RST: no earlier packet of this flow in the capture (only 1 other RSTs); its start was not captured, or it is backscatter of a spoofed scan: nothing to infer a cause from"##,
            },
        ],
    );
}

#[test]
fn rst_answering_an_mptcp_fastclose_is_explained_not_guessed() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c A seq=1001 ack=5001 fc=1"##,
            r##"s RA seq=5001 ack=1001"##,
        ],
        &[Expected {
            frame: 5,
            label: r##"unknown"##,
            sender: r##"server"##,
            confidence: r##"medium"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"answers the peer's MPTCP MP_FASTCLOSE (#4): a reset the protocol requires, not a fault of this connection"##,
        }],
    );
}

#[test]
fn bare_rst_fitting_no_pattern_is_unknown() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=10"##,
            r##"s A seq=5001 ack=1011"##,
            r##"s R seq=9999"##,
        ],
        &[Expected {
            frame: 6,
            label: r##"unknown"##,
            sender: r##"server"##,
            confidence: r##"low"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"R from the server seq=4999 after #4 P. 10 B seq=1; no known pattern fits"##,
        }],
    );
}

#[test]
fn identical_copy_of_a_rst_inherits_its_label() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s RA ack=1001 ipid=77"##,
            r##"s RA ack=1001 ipid=77 gap=0.000003"##,
        ],
        &[
            Expected {
                frame: 2,
                label: r##"closed-port"##,
                sender: r##"server"##,
                confidence: r##"high"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40000"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"RST+ACK answers SYN #1 (ack = its seq + 1) 1.0 ms later; no SYN+ACK: nothing listens on that port"##,
            },
            Expected {
                frame: 3,
                label: r##"closed-port"##,
                sender: r##"server"##,
                confidence: r##"high"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40000"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: Some(2),
                evidence: r##"identical copy of #2: RST+ACK answers SYN #1 (ack = its seq + 1) 1.0 ms later; no SYN+ACK: nothing listens on that port"##,
            },
        ],
    );
}

#[test]
fn verdict_without_the_handshake_says_the_roles_were_guessed() {
    check(
        &[
            r##"c PA seq=1001 ack=5001 len=10"##,
            r##"s RA seq=5001 ack=1011"##,
        ],
        &[Expected {
            frame: 2,
            label: r##"unread-data"##,
            sender: r##"server"##,
            confidence: r##"high"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the RST is the first acknowledgement of 11 B from the peer: data arrived and the application closed without reading it (roles guessed: the handshake is not in the capture)"##,
        }],
    );
}

#[test]
fn verdict_between_two_high_ports_says_the_roles_were_guessed() {
    check(
        &[
            r##"c PA seq=1001 ack=5001 len=10 sport=40001"##,
            r##"s RA seq=5001 ack=1011 sport=40001"##,
        ],
        &[Expected {
            frame: 2,
            label: r##"unread-data"##,
            sender: r##"server"##,
            confidence: r##"high"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:40001"##,
            duplicate_of: None,
            evidence: r##"the RST is the first acknowledgement of 11 B from the peer: data arrived and the application closed without reading it (roles guessed: the handshake is not in the capture)"##,
        }],
    );
}

#[test]
fn rsts_own_text_is_shown_printable_and_cut() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s RA ack=1001 len=140 payload=48690aff7f2268c3a94141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414141"##,
        ],
        &[Expected {
            frame: 2,
            label: r##"closed-port"##,
            sender: r##"server"##,
            confidence: r##"high"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"RST+ACK answers SYN #1 (ack = its seq + 1) 1.0 ms later; no SYN+ACK: nothing listens on that port; RST carries 140 B: "Hi.�."h��AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA""##,
        }],
    );
}

#[test]
fn rsts_mptcp_reason_is_shown_after_its_text() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"c PA seq=1001 ack=5001 len=10"##,
            r##"s RA seq=5001 ack=1011 len=2 payload=6f6b reason=3"##,
        ],
        &[Expected {
            frame: 5,
            label: r##"unread-data"##,
            sender: r##"server"##,
            confidence: r##"high"##,
            src: r##"198.51.100.7"##,
            dst: r##"192.0.2.1"##,
            client: r##"192.0.2.1:40000"##,
            server: r##"198.51.100.7:8080"##,
            duplicate_of: None,
            evidence: r##"the RST is the first acknowledgement of 10 B from the peer: data arrived and the application closed without reading it; RST carries 2 B: "ok"; MPTCP MP_TCPRST reason code 3"##,
        }],
    );
}

#[test]
fn accept_overflows_to_one_listener_within_seconds_are_high_confidence() {
    check(
        &[
            r##"c S seq=1000"##,
            r##"s SA seq=5000 ack=1001"##,
            r##"c A seq=1001 ack=5001"##,
            r##"s R seq=5001"##,
            r##"c S seq=1000 cport=40001"##,
            r##"s SA seq=5000 ack=1001 cport=40001"##,
            r##"c A seq=1001 ack=5001 cport=40001"##,
            r##"s R seq=5001 cport=40001"##,
            r##"c S seq=1000 cport=40002 gap=2.5"##,
            r##"s SA seq=5000 ack=1001 cport=40002"##,
            r##"c A seq=1001 ack=5001 cport=40002"##,
            r##"s R seq=5001 cport=40002"##,
        ],
        &[
            Expected {
                frame: 4,
                label: r##"accept-overflow"##,
                sender: r##"server"##,
                confidence: r##"high"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40000"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"the client completed the handshake; the listener answered with a bare RST at its ISN+1 instead of accepting: the accept queue was full; 2 such RSTs from this listener within 2 s"##,
            },
            Expected {
                frame: 8,
                label: r##"accept-overflow"##,
                sender: r##"server"##,
                confidence: r##"high"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40001"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"the client completed the handshake; the listener answered with a bare RST at its ISN+1 instead of accepting: the accept queue was full; 2 such RSTs from this listener within 2 s"##,
            },
            Expected {
                frame: 12,
                label: r##"accept-overflow"##,
                sender: r##"server"##,
                confidence: r##"medium"##,
                src: r##"198.51.100.7"##,
                dst: r##"192.0.2.1"##,
                client: r##"192.0.2.1:40002"##,
                server: r##"198.51.100.7:8080"##,
                duplicate_of: None,
                evidence: r##"the client completed the handshake; the listener answered with a bare RST at its ISN+1 instead of accepting: the accept queue was full"##,
            },
        ],
    );
}
