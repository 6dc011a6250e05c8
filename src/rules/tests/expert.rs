//! Where an expert reading the packets says something the first rules did not: devices in the
//! path, honest ambiguity, and whether the RST took effect (issue 17). Line syntax: see
//! `packets` in the parent module.

use super::judgements;

fn one(lines: &[&str]) -> (String, String) {
    let mut all = judgements(lines);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.remove(0)
}

const REQUEST_UNANSWERED: [&str; 5] = [
    "c S seq=1000",
    "s SA seq=5000 ack=1001",
    "c A seq=1001 ack=5001",
    "c PA seq=1001 ack=5001 len=10",
    "s A seq=5001 ack=1011",
];

#[test]
fn unanswered_request_then_rst_ack_is_unread_data_or_linger_abort() {
    let mut lines = REQUEST_UNANSWERED.to_vec();
    lines.push("s RA seq=5001 ack=1011");
    let (what, evidence) = one(&lines);
    assert_eq!(what, "unread-data server medium [linger-abort] accepted");
    assert!(
        evidence.ends_with("the wire also allows: linger-abort"),
        "{evidence}"
    );
}

#[test]
fn the_clients_fin_before_that_rst_changes_nothing() {
    let mut lines = REQUEST_UNANSWERED.to_vec();
    lines.extend([
        "c FA seq=1011 ack=5001",
        "s A seq=5001 ack=1012",
        "s RA seq=5001 ack=1012",
    ]);
    let (what, _) = one(&lines);
    assert_eq!(what, "unread-data server medium [linger-abort] accepted");
}

#[test]
fn the_clients_fin_answered_by_the_rst_changes_nothing() {
    let mut lines = REQUEST_UNANSWERED.to_vec();
    lines.extend(["c FA seq=1011 ack=5001", "s RA seq=5001 ack=1012"]);
    let (what, _) = one(&lines);
    assert_eq!(what, "unread-data server medium [linger-abort] accepted");
}

#[test]
fn linger_abort_after_the_reply_names_unread_data_as_the_alternative() {
    let mut lines = REQUEST_UNANSWERED.to_vec();
    lines.extend([
        "s PA seq=5001 ack=1011 len=100",
        "c A seq=1011 ack=5101",
        "s RA seq=5101 ack=1011",
    ]);
    let (what, _) = one(&lines);
    assert_eq!(what, "linger-abort server medium [unread-data] accepted");
}

// The LDAP capture: a firewall or SYN proxy answered the handshake in the client's name (TTL
// 251, one IP ID counter, window 9300); the client's host sent the data (TTL 52, its own
// counter, windows near 460). 181 s idle, then the RST from the first device.
const LDAP: [&str; 9] = [
    "c S seq=1000 ttl=251 ipid=31756 win=9300 sport=389",
    "s SA seq=5000 ack=1001 sport=389",
    "c A seq=1001 ack=5001 ttl=251 ipid=31757 win=9300 sport=389",
    "c PA seq=1001 ack=5001 len=50 ttl=52 ipid=49424 win=458 sport=389",
    "s PA seq=5001 ack=1051 len=20 sport=389",
    "c PA seq=1051 ack=5021 len=50 ttl=52 ipid=49426 win=463 sport=389",
    "s PA seq=5021 ack=1101 len=20 sport=389",
    "c A seq=1101 ack=5041 ttl=52 ipid=49428 win=460 sport=389",
    "c RA seq=1101 ack=5041 ttl=251 ipid=32788 win=9300 gap=181 sport=389",
];

#[test]
fn rst_from_the_device_that_answered_the_handshake_is_a_middlebox_idle_timeout() {
    let (what, evidence) = one(&LDAP);
    assert_eq!(what, "injected path high [] accepted");
    assert!(
        evidence.contains("TTL 251, IP ID 31756..31757, window 9300"),
        "{evidence}"
    );
    assert!(
        evidence.contains("TTL 52, IP ID 49424..49428, window 458-463"),
        "{evidence}"
    );
    assert!(
        evidence.contains("IP ID 32788, on the first device's counter"),
        "{evidence}"
    );
    assert!(
        evidence.ends_with("after 181 s idle: a middlebox idle timeout"),
        "{evidence}"
    );
}

#[test]
fn keepalive_probe_answered_by_another_device_is_half_open_naming_it() {
    let (what, evidence) = one(&[
        "c S seq=1000 ttl=62",
        "s SA seq=5000 ack=1001",
        "c A seq=1001 ack=5001 ttl=62",
        "c PA seq=1001 ack=5001 len=10 ttl=62",
        "s A seq=5001 ack=1011",
        "s A seq=5000 ack=1011 gap=7200",
        "c R seq=1011 ttl=127",
    ]);
    assert_eq!(what, "half-open path medium [] accepted");
    assert!(evidence.contains("from another device than the client's host (TTL 127; the client's packets have TTL 62)"), "{evidence}");
}

#[test]
fn forged_rst_nobody_asked_for_stays_injected() {
    let (what, _) = one(&[
        "c S seq=1000 ttl=62",
        "s SA seq=5000 ack=1001",
        "c A seq=1001 ack=5001 ttl=62",
        "c PA seq=1001 ack=5001 len=10 ttl=62",
        "s A seq=5001 ack=1011",
        "c RA seq=1011 ack=5001 ttl=127",
    ]);
    assert_eq!(what, "injected path medium [] accepted");
}

#[test]
fn bare_rst_long_after_everything_was_acknowledged_is_the_senders_own_abortive_close() {
    let (what, evidence) = one(&[
        "c S seq=1000",
        "s SA seq=5000 ack=1001",
        "c A seq=1001 ack=5001",
        "c PA seq=1001 ack=5001 len=10",
        "s PA seq=5001 ack=1011 len=100",
        "c A seq=1011 ack=5101",
        "c R seq=1011 gap=13",
    ]);
    assert_eq!(what, "linger-abort client medium [unread-data] accepted");
    assert!(
        evidence.contains("13.0 s after the last exchange (#6), answering nothing"),
        "{evidence}"
    );
}

#[test]
fn bare_rst_right_after_new_data_still_answers_it() {
    let (what, _) = one(&[
        "c S seq=1000",
        "s SA seq=5000 ack=1001",
        "c A seq=1001 ack=5001",
        "s PA seq=5001 ack=1001 len=100 gap=0.3",
        "c R seq=1001",
    ]);
    assert_eq!(what, "half-open client medium [] accepted");
}

#[test]
fn fin_null_and_xmas_probes_to_a_closed_port_are_closed_port_naming_the_probe() {
    for (probe, name, ack) in [
        ("F", "FIN", 1001),
        ("-", "NULL", 1000),
        ("FPU", "Xmas", 1001),
    ] {
        let flags = if probe == "none" { "" } else { probe };
        let (what, evidence) = one(&[
            &format!("c {flags} seq=1000"),
            &format!("s RA seq=0 ack={ack}"),
        ]);
        assert_eq!(what, "closed-port server high [] unknown", "{name}");
        assert!(
            evidence.starts_with(&format!("RST+ACK answers a {name} scan probe #1")),
            "{evidence}"
        );
    }
}

// Seed 003: the client sent its FIN (seq 421); a firewall on the client's side resets the
// server's stream with the pre-FIN sequence number. The server's window starts at 422: it
// ignores the RST and retransmits.
#[test]
fn rst_one_before_the_window_after_the_fin_is_ignored_while_the_server_retransmits() {
    let (what, evidence) = one(&[
        "c S seq=0",
        "s SA seq=9000 ack=1",
        "c A seq=1 ack=9001",
        "c PA seq=1 ack=9001 len=420",
        "s A seq=9001 ack=421",
        "s PA seq=9001 ack=421 len=1000",
        "c FA seq=421 ack=10001",
        "s A seq=10001 ack=422",
        "s PA seq=10001 ack=422 len=1000",
        "c RA seq=421 ack=10001 ttl=63",
        "s PA seq=10001 ack=422 len=1000 gap=0.4",
        "s PA seq=10001 ack=422 len=1000 gap=0.8",
    ]);
    assert!(what.ends_with(" ignored"), "{what}");
    assert!(
        evidence.contains("the RST was ignored: seq 421 is 1 before the server's window (it expects 422); the server retransmitted after it (#11"),
        "{evidence}"
    );
}

#[test]
fn rst_in_the_window_but_not_exact_answered_by_a_challenge_ack_is_challenged() {
    let (what, evidence) = one(&[
        "c S seq=1000",
        "s SA seq=5000 ack=1001",
        "c A seq=1001 ack=5001",
        "c PA seq=1001 ack=5001 len=10",
        "s A seq=5001 ack=1011",
        "c R seq=1500 gap=0.5",
        "s A seq=5001 ack=1011",
        "c PA seq=1011 ack=5001 len=10 gap=0.5",
    ]);
    assert!(what.ends_with(" challenged"), "{what}");
    assert!(evidence.contains("seq 500 is in the server's window but 489 past the expected 11: answered by the challenge ACK #7 (RFC 5961)"), "{evidence}");
}

#[test]
fn rst_whose_receiver_keeps_silent_is_accepted_and_one_the_capture_cuts_is_unknown() {
    let mut lines = REQUEST_UNANSWERED.to_vec();
    lines.push("c R seq=1500");
    let (what, _) = one(&lines);
    assert!(what.ends_with(" unknown"), "{what}");
}

#[test]
fn reply_to_a_client_that_gave_up_its_unacknowledged_request_is_half_open_saying_so() {
    // the server never got the second request; the client's stack gave up retransmitting it
    // (TCP_USER_TIMEOUT) and answers the late reply as a stack without the connection
    let (what, evidence) = one(&[
        "c S seq=1000",
        "s SA seq=5000 ack=1001",
        "c A seq=1001 ack=5001",
        "c PA seq=1001 ack=5001 len=10",
        "s A seq=5001 ack=1011",
        "c PA seq=1011 ack=5001 len=10",
        "c PA seq=1011 ack=5001 len=10 gap=0.2",
        "c PA seq=1011 ack=5001 len=10 gap=0.4",
        "s PA seq=5001 ack=1011 len=10 gap=1",
        "c R seq=1011",
    ]);
    assert_eq!(what, "half-open client medium [] accepted");
    assert!(
        evidence.contains(
            "the segment acknowledges 11, behind the client's next 21: the client's last 10 B \
             never got acknowledged"
        ),
        "{evidence}"
    );
}
