//! The kernel's reasons that `rstdiag live -w --kernel-reasons` saves in pcapng packet
//! comments, read back by frame (src/kernel_note.rs); every other comment left alone.

use super::fixtures::*;
use super::*;
use crate::kernel_note::{self, Note};

/// An Enhanced Packet Block on interface 0 with `options` after its data (and the end of
/// options after them).
fn epb_with(data: &[u8], options: &[Vec<u8>], big: Big) -> Vec<u8> {
    let plain = epb(0, 1_700_000_000_000_000, data, None, big);
    let mut body = plain[8..plain.len() - 4].to_vec();
    for opt in options {
        body.extend_from_slice(opt);
    }
    body.extend(option(0, b"", big));
    block(6, &body, big)
}

fn comment(text: &[u8], big: Big) -> Vec<u8> {
    option(1, text, big)
}

/// The frames read and the notes taken at the end.
fn notes_of(data: &[u8]) -> (u64, Vec<(u64, Note)>) {
    let mut reader = CaptureReader::new(data, "<stream>").expect("a capture");
    let mut frames = 0;
    while let Some(raw) = reader.next_frame().expect("readable") {
        assert_eq!(raw.data.len(), 40, "frame {} keeps its bytes", raw.frame);
        frames += 1;
    }
    assert!(reader.warnings().is_empty(), "{:?}", reader.warnings());
    (frames, reader.take_notes())
}

fn reason(text: &str) -> Note {
    Note::Reason(text.to_string())
}

#[test]
fn a_saved_reason_is_read_back_for_its_frame_in_either_byte_order() {
    for big in [false, true] {
        let value = kernel_note::reason_value("TCP_ABORT_ON_CLOSE in TCP_CLOSE").expect("value");
        let mut file = shb(big);
        file.extend(idb(ETHERNET as u16, b"", big));
        file.extend(epb(0, 1, &[0; 40], None, big));
        file.extend(epb_with(&[1; 40], &[comment(&value, big)], big));
        file.extend(epb_with(
            &[2; 40],
            &[comment(&kernel_note::placeholder(), big)],
            big,
        ));
        let (frames, notes) = notes_of(&file);
        assert_eq!(frames, 3);
        assert_eq!(
            notes,
            vec![
                (2, reason("TCP_ABORT_ON_CLOSE in TCP_CLOSE")),
                (3, Note::Unmatched)
            ],
            "big-endian: {big}"
        );
    }
}

#[test]
fn other_tools_comments_are_no_reasons() {
    let mut file = shb(false);
    file.extend(idb(ETHERNET as u16, b"", false));
    for text in [
        &b"rstdiag: half-open (high confidence), sent by the server | kernel reason: NO_SOCKET"[..],
        b"checked by hand",
        b"rstdiag kernel reason: made up by someone \x1b[2J",
    ] {
        file.extend(epb_with(&[7; 40], &[comment(text, false)], false));
    }
    let (frames, notes) = notes_of(&file);
    assert_eq!((frames, notes), (3, vec![]));
}

#[test]
fn the_reason_is_found_among_other_options_and_beside_other_comments() {
    let value = kernel_note::reason_value("NO_SOCKET").expect("value");
    let flags = option(2, &[1, 0, 0, 0], false); // epb_flags: inbound
    let mut file = shb(false);
    file.extend(idb(ETHERNET as u16, b"", false));
    file.extend(epb_with(
        &[0; 40],
        &[
            flags,
            comment(b"seen in prod", false),
            comment(&value, false),
        ],
        false,
    ));
    assert_eq!(notes_of(&file), (1, vec![(1, reason("NO_SOCKET"))]));
}

#[test]
fn a_malformed_option_ends_the_search_and_the_packet_stands() {
    let value = kernel_note::reason_value("NO_SOCKET").expect("value");
    let mut lying = option(1, &value, false);
    lying[2..4].copy_from_slice(&4000u16.to_le_bytes()); // runs past the block
    let mut file = shb(false);
    file.extend(idb(ETHERNET as u16, b"", false));
    file.extend(epb_with(&[0; 40], &[lying], false));
    assert_eq!(notes_of(&file), (1, vec![]));
}

#[test]
fn an_obsolete_packet_blocks_comment_is_read_too() {
    let value = kernel_note::reason_value("TCP_STATE in TCP_CLOSE").expect("value");
    let plain = packet_block(0, 5, &[3; 40], false);
    let mut body = plain[8..plain.len() - 4].to_vec();
    body.extend(comment(&value, false));
    body.extend(option(0, b"", false));
    let mut file = shb(false);
    file.extend(idb(ETHERNET as u16, b"", false));
    file.extend(block(2, &body, false));
    assert_eq!(
        notes_of(&file),
        (1, vec![(1, reason("TCP_STATE in TCP_CLOSE"))])
    );
}

#[test]
fn notes_are_handed_over_once() {
    let value = kernel_note::reason_value("NO_SOCKET").expect("value");
    let mut file = shb(false);
    file.extend(idb(ETHERNET as u16, b"", false));
    file.extend(epb_with(&[0; 40], &[comment(&value, false)], false));
    let mut reader = CaptureReader::new(file.as_slice(), "<stream>").expect("a capture");
    assert!(reader.next_frame().expect("readable").is_some());
    assert_eq!(reader.take_notes().len(), 1);
    assert!(reader.take_notes().is_empty());
}
