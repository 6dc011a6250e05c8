//! A listener that closes with connections in its accept queue (rules::listeners): the resets
//! of those connections and the closed-port RSTs of the SYNs after them tell it together.

use super::engine_verdicts;
use crate::verdict::{Label, LISTENER_CLOSED_HINT};

/// Two connections queued on :8080 (one sent a request), the listener closes (#9, #10), then a
/// third client's SYN is refused (#12).
const CLOSE_THEN_REFUSE: [&str; 12] = [
    "c S seq=1000 cport=40001",
    "s SA seq=5000 ack=1001 cport=40001",
    "c A seq=1001 ack=5001 cport=40001",
    "c PA seq=1001 ack=5001 len=10 cport=40001",
    "s A seq=5001 ack=1011 cport=40001",
    "c S seq=2000 cport=40002",
    "s SA seq=6000 ack=2001 cport=40002",
    "c A seq=2001 ack=6001 cport=40002",
    "s RA seq=5001 ack=1011 cport=40001 gap=2",
    "s RA seq=6001 ack=2001 cport=40002",
    "c S seq=3000 cport=40003 gap=0.5",
    "s RA seq=0 ack=3001 cport=40003",
];

const STORY: &str = "the listener on :8080 closed at #9 (later SYNs get closed-port); \
                     connections still queued were reset";

#[test]
fn queued_connections_reset_before_a_refused_syn_tell_the_listeners_close() {
    let vs = engine_verdicts(&CLOSE_THEN_REFUSE, true);
    let got: Vec<(u64, Label, bool)> = vs
        .iter()
        .map(|v| (v.frame, v.label, v.evidence.contains(STORY)))
        .collect();
    assert_eq!(
        got,
        [
            (9, Label::UnreadData, true),
            (10, Label::LingerAbort, true),
            (12, Label::ClosedPort, true)
        ]
    );
    assert!(vs.iter().all(|v| v.hint() == LISTENER_CLOSED_HINT));
}

#[test]
fn resets_without_a_refused_syn_after_them_keep_their_own_story() {
    let vs = engine_verdicts(&CLOSE_THEN_REFUSE[..10], true);
    assert_eq!(vs.len(), 2);
    assert!(
        vs.iter().all(|v| !v.evidence.contains("listener")),
        "{vs:#?}"
    );
    assert!(vs.iter().all(|v| v.hint() == v.label.hint()));
}

#[test]
fn a_refused_syn_long_after_the_resets_tells_nothing_of_them() {
    let mut lines = CLOSE_THEN_REFUSE.to_vec();
    lines[10] = "c S seq=3000 cport=40003 gap=30";
    let vs = engine_verdicts(&lines, true);
    assert!(
        vs.iter().all(|v| !v.evidence.contains("listener")),
        "{vs:#?}"
    );
}

#[test]
fn a_refused_syn_to_another_port_tells_nothing_of_them() {
    let mut lines = CLOSE_THEN_REFUSE.to_vec();
    lines[10] = "c S seq=3000 cport=40003 sport=9090 gap=0.5";
    lines[11] = "s RA seq=0 ack=3001 cport=40003 sport=9090";
    let vs = engine_verdicts(&lines, true);
    assert!(
        vs.iter().all(|v| !v.evidence.contains("listener")),
        "{vs:#?}"
    );
}

#[test]
fn the_resets_wait_for_the_syns_after_them_before_they_leave() {
    // while the capture runs, the resets are held LISTENER_SECONDS: 7 s later their flows'
    // after-windows are over, yet nothing leaves before a refused SYN could tell their story
    let mut quiet = CLOSE_THEN_REFUSE[..10].to_vec();
    quiet.push("c S seq=9000 cport=40009 gap=7");
    assert!(engine_verdicts(&quiet, false).is_empty());
    quiet.push("c S seq=9000 cport=40009 gap=4");
    assert_eq!(engine_verdicts(&quiet, false).len(), 2);
    let mut later = CLOSE_THEN_REFUSE.to_vec();
    later.push("c S seq=9000 cport=40009 gap=20");
    let vs = engine_verdicts(&later, false);
    assert_eq!(
        vs.iter().map(|v| v.frame).collect::<Vec<_>>(),
        [9, 10, 12],
        "{vs:#?}"
    );
    assert!(vs.iter().all(|v| v.evidence.contains(STORY)));
}
