//! The kernel's reason for a RST, kept in a pcapng packet comment: what `live -w
//! --kernel-reasons` writes (src/live/pcapout.rs) and what reading the file back picks up
//! (src/capture/pcapng.rs), so that `read` of the file gives the verdicts `live` gave.
//!
//! Every RST's packet block gets an opt_comment of `RESERVED` bytes when it is written,
//! saying that no reason is known (`NONE`); once the kernel's reason is matched, the same
//! bytes are overwritten in place with `PREFIX` and the reason ("TCP_ABORT_ON_CLOSE in
//! TCP_CLOSE"), padded with spaces. The size never changes, so the file stays valid at every
//! moment. Wireshark shows the comment as it shows any other (`frame.comment`).
//!
//! Only a comment that starts with `PREFIX` is one of these: other tools' comments (and
//! `rstdiag annotate`'s) are left alone.

/// How every such comment starts.
pub const PREFIX: &[u8] = b"rstdiag kernel reason: ";
/// What follows `PREFIX` while no reason is known (and for good, if none came).
pub const NONE: &[u8] = b"none (no tcp_send_reset event matched this RST)";
/// Bytes of the comment's value: `PREFIX` and the longest "REASON in STATE" with room to
/// spare (the longest today: TCP_DISCONNECT_WITH_DATA in TCP_BOUND_INACTIVE, 46 bytes); a
/// multiple of 4, so the option needs no padding.
pub const RESERVED: usize = 96;
/// The most that is read back of a comment's reason text.
const MAX_TEXT: usize = RESERVED - PREFIX.len();

/// What a saved comment says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// the kernel's reason: "REASON" or "REASON in STATE"
    Reason(String),
    /// the RST was saved with no reason matched
    Unmatched,
}

impl Note {
    /// The text handed on: the reason, or "" when none was matched.
    pub fn text(&self) -> &str {
        match self {
            Note::Reason(text) => text,
            Note::Unmatched => "",
        }
    }
}

/// The comment's value announcing that no reason is known yet.
pub fn placeholder() -> [u8; RESERVED] {
    value_of(NONE)
}

/// The comment's value for the kernel's reason `text`; None when it is not a reason as the
/// tracepoint writes them (capital letters, digits, '_', and " in " a state), which the
/// reader would not take back.
pub fn reason_value(text: &str) -> Option<[u8; RESERVED]> {
    let note = parse(text.as_bytes())?;
    matches!(note, Note::Reason(_)).then(|| value_of(text.as_bytes()))
}

fn value_of(text: &[u8]) -> [u8; RESERVED] {
    let mut value = [b' '; RESERVED];
    let (head, tail) = value.split_at_mut(PREFIX.len());
    head.copy_from_slice(PREFIX);
    let n = text.len().min(tail.len());
    if let (Some(room), Some(text)) = (tail.get_mut(..n), text.get(..n)) {
        room.copy_from_slice(text);
    }
    value
}

/// The note of a comment's value, if it is one of rstdiag's: `PREFIX`, then the reason or
/// the placeholder, then spaces (or nothing).
pub fn of_comment(value: &[u8]) -> Option<Note> {
    parse(value.strip_prefix(PREFIX)?)
}

fn parse(text: &[u8]) -> Option<Note> {
    let text = text.trim_ascii_end();
    if text.is_empty() || text.len() > MAX_TEXT {
        return None;
    }
    if text.starts_with(b"none") {
        return Some(Note::Unmatched);
    }
    let mut words = text.split(|&b| b == b' ');
    let reason = words.next()?;
    let state = match (words.next(), words.next(), words.next()) {
        (None, _, _) => None,
        (Some(b"in"), Some(state), None) => Some(state),
        _ => return None,
    };
    let name = |word: &[u8]| {
        word.first().is_some_and(u8::is_ascii_uppercase)
            && word
                .iter()
                .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    };
    if !name(reason) || !state.is_none_or(name) {
        return None;
    }
    // only ASCII letters, digits, '_' and spaces: valid UTF-8
    String::from_utf8(text.to_vec()).ok().map(Note::Reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_fills_the_reserved_bytes_and_reads_back() {
        let value = reason_value("TCP_ABORT_ON_CLOSE in TCP_CLOSE").expect("a reason");
        assert_eq!(value.len(), RESERVED);
        assert!(value.starts_with(b"rstdiag kernel reason: TCP_ABORT_ON_CLOSE in TCP_CLOSE "));
        assert_eq!(
            of_comment(&value),
            Some(Note::Reason("TCP_ABORT_ON_CLOSE in TCP_CLOSE".to_string()))
        );
        assert_eq!(
            of_comment(&reason_value("NO_SOCKET").expect("a reason")),
            Some(Note::Reason("NO_SOCKET".to_string()))
        );
    }

    #[test]
    fn the_placeholder_reads_back_as_no_reason() {
        let value = placeholder();
        assert!(value.starts_with(b"rstdiag kernel reason: none (no tcp_send_reset"));
        assert_eq!(of_comment(&value), Some(Note::Unmatched));
        assert_eq!(Note::Unmatched.text(), "");
    }

    #[test]
    fn other_comments_are_not_notes() {
        for comment in [
            &b"rstdiag: half-open (high confidence), sent by the server"[..],
            b"kernel reason: TCP_STATE",
            b"",
            b"rstdiag kernel reason: ",
            b"rstdiag kernel reason: tcp_state",
            b"rstdiag kernel reason: TCP_STATE in TCP_CLOSE and more",
            b"rstdiag kernel reason: TCP_STATE\x1b[31m",
            b"rstdiag kernel reason: TCP_STATE in ",
        ] {
            assert_eq!(of_comment(comment), None, "{comment:?}");
        }
        let long = [b"rstdiag kernel reason: ".as_slice(), &[b'A'; 200]].concat();
        assert_eq!(of_comment(&long), None);
    }

    #[test]
    fn text_that_is_no_reason_gets_no_value() {
        assert_eq!(reason_value("no such thing"), None);
        assert_eq!(reason_value(&"A".repeat(RESERVED)), None);
        assert_eq!(reason_value("none"), None);
    }
}
