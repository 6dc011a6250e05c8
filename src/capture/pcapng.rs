//! pcapng: sections, their interfaces, and the packet blocks on them.

use super::clock::{timestamp, Units};
use super::{Parsed, Tally};
use crate::kernel_note::{self, Note};

// Block types (the SHB type reads the same in both byte orders)
pub(super) const SHB: u32 = 0x0A0D_0D0A;
pub(super) const SHB_BYTES: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const IDB: u32 = 1;
const PB: u32 = 2; // obsolete Packet Block
const SPB: u32 = 3;
const EPB: u32 = 6;
pub(super) const SHB_MIN_LEN: u32 = 28;
const EPB_MIN_LEN: u32 = 32;
const EPB_HEAD: usize = 28; // type, length, interface, timestamp, lengths: then the data
pub(super) const HEAD_LEN: usize = 12; // block type, length, and an SHB's byte-order magic
const MAX_BLOCK_LEN: u32 = 16 << 20; // longer blocks are corruption, not packets
/// per section; the obsolete Packet Block can only name 65536
pub(super) const MAX_INTERFACES: usize = 65536;
const MAGIC_BE: [u8; 4] = [0x1a, 0x2b, 0x3c, 0x4d];
const MAGIC_LE: [u8; 4] = [0x4d, 0x3c, 0x2b, 0x1a];
// Interface Description Block options this reader uses
const OPT_ENDOFOPT: u16 = 0;
// and packet block options
const OPT_COMMENT: u16 = 1;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// The byte order of a section: true for big-endian.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Order(bool);

impl Order {
    /// The order an SHB's byte-order magic names, if it names one.
    fn of_magic(magic: &[u8]) -> Option<Order> {
        match *magic.first_chunk::<4>()? {
            MAGIC_BE => Some(Order(true)),
            MAGIC_LE => Some(Order(false)),
            _ => None,
        }
    }

    fn bytes<const N: usize>(self, data: &[u8], at: usize) -> Option<[u8; N]> {
        let mut bytes = *data.get(at..)?.first_chunk::<N>()?;
        if self.0 != cfg!(target_endian = "big") {
            bytes.reverse();
        }
        Some(bytes)
    }

    fn u16(self, data: &[u8], at: usize) -> Option<u16> {
        self.bytes(data, at).map(u16::from_ne_bytes)
    }

    fn u32(self, data: &[u8], at: usize) -> Option<u32> {
        self.bytes(data, at).map(u32::from_ne_bytes)
    }

    fn i64(self, data: &[u8], at: usize) -> Option<i64> {
        self.bytes(data, at).map(i64::from_ne_bytes)
    }
}

/// An interface of a pcapng section.
#[derive(Clone, Debug, PartialEq)]
struct Interface {
    linktype: u32,
    units: Units,
    /// if_tsoffset: seconds added to every timestamp
    offset: i64,
}

/// The fields of a packet block that make a frame.
struct PacketFields {
    iface: u32,
    /// None for a Simple Packet Block, which has no timestamp
    ticks: Option<u64>,
    caplen: u32,
    wirelen: u32,
    /// where the packet data starts in the block
    start: usize,
}

/// The state of the pcapng section being read.
#[derive(Debug)]
pub(super) struct Section {
    order: Order,
    interfaces: Vec<Interface>,
}

impl Section {
    /// Before the first block (an SHB, already checked), which sets the real byte order.
    pub(super) fn new() -> Section {
        Section {
            order: Order(false),
            interfaces: Vec::new(),
        }
    }

    /// The block at the start of `avail`, whose first byte is at file offset `offset`.
    pub(super) fn step(&mut self, avail: &[u8], offset: u64, tally: &mut Tally) -> Parsed {
        match self.enhanced_packet(avail, tally) {
            Some(frame) => frame,
            None => self.block(avail, offset, tally),
        }
    }

    /// The hot path: a well-formed Enhanced Packet Block, wholly buffered, on a known interface.
    /// Anything else takes `block`, which checks again and explains what it finds.
    fn enhanced_packet(&self, avail: &[u8], tally: &mut Tally) -> Option<Parsed> {
        let order = self.order;
        let head = avail.first_chunk::<28>()?;
        let length = order.u32(head, 4)?;
        let caplen = order.u32(head, 20)?;
        // MAX_BLOCK_LEN: a longer block never fits the Python reader's buffer, so it never
        // takes its hot path; here it goes to `block` and its warning alike.
        if order.u32(head, 0)? != EPB
            || u64::from(caplen) + u64::from(EPB_MIN_LEN) > u64::from(length)
            || length & 3 != 0
            || length > MAX_BLOCK_LEN
        {
            return None;
        }
        let stop = length as usize;
        if avail.len() < stop || order.u32(avail, stop - 4)? != length {
            return None;
        }
        let interface = self.interfaces.get(order.u32(head, 8)? as usize)?;
        let ticks = u64::from(order.u32(head, 12)?) << 32 | u64::from(order.u32(head, 16)?);
        let wirelen = order.u32(head, 24)?;
        tally.frame += 1;
        let options = EPB_HEAD + (caplen as usize).next_multiple_of(4);
        if let Some(block) = avail.get(..stop).filter(|_| options + 4 < stop) {
            tally.note(order, block, options);
        }
        Some(Parsed::Frame {
            consumed: stop,
            data: 28..28 + caplen as usize,
            ts: timestamp(&interface.units, ticks, interface.offset),
            linktype: interface.linktype,
            wirelen,
        })
    }

    /// Any block: checked step by step, each problem named.
    fn block(&mut self, avail: &[u8], offset: u64, tally: &mut Tally) -> Parsed {
        let (Some(btype), Some(mut length)) = (self.order.u32(avail, 0), self.order.u32(avail, 4))
        else {
            return Parsed::Need(HEAD_LEN);
        };
        if avail.len() < HEAD_LEN {
            return Parsed::Need(HEAD_LEN);
        }
        if btype == SHB {
            // A new section: its own byte order, no interfaces yet.
            let magic = avail.get(8..HEAD_LEN).unwrap_or_default();
            let Some(order) = Order::of_magic(magic) else {
                let problem = format!("byte-order magic 0x{}", hex(magic));
                return corrupt(tally, offset, btype, tally.frame, &problem);
            };
            self.order = order;
            length = order.u32(avail, 4).unwrap_or_default();
            self.interfaces.clear();
            if let Some(problem) = version_problem(order, avail) {
                return corrupt(tally, offset, btype, tally.frame, &problem);
            }
        }
        if let Some(problem) = block_length_problem(length, min_length(btype)) {
            return corrupt(tally, offset, btype, tally.frame, &problem);
        }
        let len = length as usize;
        let Some(block) = avail.get(..len) else {
            return Parsed::Need(len);
        };
        let trailer = self.order.u32(block, len - 4).unwrap_or_default();
        if trailer != length {
            let problem = format!("trailing length {trailer} differs from leading {length}");
            return corrupt(tally, offset, btype, tally.frame, &problem);
        }
        match btype {
            EPB | PB | SPB => self.packet(block, btype, offset, tally),
            IDB => self.interface(block, offset, tally),
            _ => Parsed::Skip(len),
        }
    }

    /// A whole packet block of any of the three kinds.
    fn packet(&self, block: &[u8], btype: u32, offset: u64, tally: &mut Tally) -> Parsed {
        tally.frame += 1;
        let Some(fields) = packet_fields(self.order, block, btype) else {
            return Parsed::Stop; // the length checks guarantee the fixed fields
        };
        let stop = fields.start as u64 + u64::from(fields.caplen);
        if stop > block.len() as u64 - 4 {
            let problem = format!("caplen {} exceeds the block", fields.caplen);
            return corrupt(tally, offset, btype, tally.frame - 1, &problem);
        }
        let Some(interface) = self.interfaces.get(fields.iface as usize) else {
            tally.skipped_frames += 1;
            if !tally.warned_interface {
                tally.warned_interface = true;
                tally.warnings.push(format!(
                    "frame {} at byte offset {offset} names interface {}, which no Interface \
                     Description Block of its section declares; skipped it and any others like it",
                    tally.frame, fields.iface
                ));
            }
            return Parsed::Skip(block.len());
        };
        if btype != SPB {
            let options = fields.start + (fields.caplen as usize).next_multiple_of(4);
            tally.note(self.order, block, options);
        }
        Parsed::Frame {
            consumed: block.len(),
            data: fields.start..stop as usize,
            ts: match fields.ticks {
                Some(ticks) => timestamp(&interface.units, ticks, interface.offset),
                None => 0.0,
            },
            linktype: interface.linktype,
            wirelen: fields.wirelen,
        }
    }

    /// A whole Interface Description Block: one more interface for the section.
    fn interface(&mut self, block: &[u8], offset: u64, tally: &mut Tally) -> Parsed {
        if self.interfaces.len() == MAX_INTERFACES {
            // 20 bytes of file each: a cap on the memory a small file can claim
            let problem = format!("more than {MAX_INTERFACES} interfaces");
            return corrupt(tally, offset, IDB, tally.frame, &problem);
        }
        let (interface, malformed) = read_interface(self.order, block);
        if let Some((code, size)) = malformed {
            if !tally.warned_option {
                tally.warned_option = true;
                tally.warnings.push(format!(
                    "ignored a malformed option (code {code}, length {size}) of the interface \
                     block at byte offset {offset}, and any others like it"
                ));
            }
        }
        self.interfaces.push(interface);
        Parsed::Skip(block.len())
    }
}

impl Tally {
    /// The kernel's reason that rstdiag saved in a comment of the packet block `block`
    /// (options from `at`), noted for its frame; any other option is passed over.
    fn note(&mut self, order: Order, block: &[u8], at: usize) {
        if let Some(note) = kernel_note_of(order, block, at) {
            self.notes.push((self.frame, note));
        }
    }
}

/// rstdiag's kernel-reason comment among the options of a whole packet block, from `at` to
/// the block's trailing length. A malformed option ends the search (the packet stands).
fn kernel_note_of(order: Order, block: &[u8], at: usize) -> Option<Note> {
    let end = block.len().checked_sub(4)?;
    let mut opt = at;
    while opt + 4 <= end {
        let code = order.u16(block, opt)?;
        let size = usize::from(order.u16(block, opt + 2)?);
        if code == OPT_ENDOFOPT || opt + 4 + size > end {
            return None;
        }
        if code == OPT_COMMENT {
            if let Some(note) = block
                .get(opt + 4..opt + 4 + size)
                .and_then(kernel_note::of_comment)
            {
                return Some(note);
            }
        }
        opt += 4 + size.next_multiple_of(4);
    }
    None
}

/// Why a section cannot be read, from its header's version: the specification has readers
/// skip a major version they do not know (its blocks may mean something else), and every
/// writer in use writes 1.0 or 1.2.
fn version_problem(order: Order, header: &[u8]) -> Option<String> {
    let major = order.u16(header, 12)?;
    let minor = order.u16(header, 14)?;
    (major != 1).then(|| format!("version {major}.{minor}, and rstdiag reads version 1"))
}

/// A damaged first Section Header Block means the file cannot be read at all: the checks of
/// the one at the start of `avail` (at least HEAD_LEN bytes). Ok(None) when it is whole and
/// sound, Ok(Some(n)) when n bytes must be buffered first, Err with the error's text.
pub(super) fn first_section_header_problem(avail: &[u8]) -> Result<Option<usize>, String> {
    let magic = avail.get(8..HEAD_LEN).unwrap_or_default();
    let Some(order) = Order::of_magic(magic) else {
        return Err(format!(
            "corrupt pcapng section header: byte-order magic 0x{} is neither 1a2b3c4d nor \
             4d3c2b1a",
            hex(magic)
        ));
    };
    let length = order.u32(avail, 4).unwrap_or_default();
    if let Some(problem) = block_length_problem(length, SHB_MIN_LEN) {
        return Err(format!("corrupt pcapng section header: {problem}"));
    }
    if let Some(problem) = version_problem(order, avail) {
        return Err(format!("unsupported pcapng section header: {problem}"));
    }
    let len = length as usize;
    if avail.len() < len {
        return Ok(Some(len));
    }
    let trailer = order.u32(avail, len - 4).unwrap_or_default();
    if trailer != length {
        return Err(format!(
            "corrupt pcapng section header: trailing length {trailer} differs from leading \
             length {length}"
        ));
    }
    Ok(None)
}

/// Link type and timestamp options of a whole Interface Description Block, and the
/// (code, length) of a malformed option that ended the reading, if one did.
fn read_interface(order: Order, block: &[u8]) -> (Interface, Option<(u16, u16)>) {
    let mut interface = Interface {
        linktype: order.u16(block, 8).map_or(0, u32::from),
        units: Units::MICROSECONDS,
        offset: 0,
    };
    let end = block.len().saturating_sub(4);
    let mut opt = 16;
    while opt + 4 <= end {
        let (Some(code), Some(size)) = (order.u16(block, opt), order.u16(block, opt + 2)) else {
            break;
        };
        if code == OPT_ENDOFOPT {
            break;
        }
        let value = opt + 4;
        if value + usize::from(size) > end {
            return (interface, Some((code, size)));
        }
        if code == IF_TSRESOL && size == 1 {
            if let Some(byte) = block.get(value) {
                interface.units = Units::from_tsresol(*byte);
            }
        } else if code == IF_TSOFFSET && size == 8 {
            interface.offset = order.i64(block, value).unwrap_or_default();
        }
        opt = value + usize::from(size).next_multiple_of(4); // values are padded to 32 bits
    }
    (interface, None)
}

/// Interface, timestamp, lengths and data start of a whole packet block.
fn packet_fields(order: Order, block: &[u8], btype: u32) -> Option<PacketFields> {
    let ticks = |at: usize| -> Option<u64> {
        Some(u64::from(order.u32(block, at)?) << 32 | u64::from(order.u32(block, at + 4)?))
    };
    Some(match btype {
        EPB => PacketFields {
            iface: order.u32(block, 8)?,
            ticks: Some(ticks(12)?),
            caplen: order.u32(block, 20)?,
            wirelen: order.u32(block, 24)?,
            start: 28,
        },
        PB => PacketFields {
            iface: u32::from(order.u16(block, 8)?),
            ticks: Some(ticks(12)?),
            caplen: order.u32(block, 20)?,
            wirelen: order.u32(block, 24)?,
            start: 28,
        },
        _ => {
            // SPB: interface 0, no timestamp, captured length implied by the block
            let wirelen = order.u32(block, 8)?;
            let room = u32::try_from(block.len()).ok()?.checked_sub(16)?;
            PacketFields {
                iface: 0,
                ticks: None,
                caplen: wirelen.min(room),
                wirelen,
                start: 12,
            }
        }
    })
}

/// The smallest length of each block type, so its fixed fields are present.
fn min_length(btype: u32) -> u32 {
    match btype {
        SHB => SHB_MIN_LEN,
        IDB => 20,
        PB | EPB => EPB_MIN_LEN,
        SPB => 16,
        _ => 12,
    }
}

/// Why a pcapng block length cannot be trusted, if it cannot.
fn block_length_problem(length: u32, minimum: u32) -> Option<String> {
    if length % 4 != 0 {
        Some(format!("block length {length} is not a multiple of 4"))
    } else if length < minimum {
        Some(format!(
            "block length {length} is shorter than the {minimum} bytes this block needs"
        ))
    } else if length > MAX_BLOCK_LEN {
        Some(format!("block length {length} exceeds {MAX_BLOCK_LEN}"))
    } else {
        None
    }
}

fn corrupt(tally: &mut Tally, offset: u64, btype: u32, frames: u64, problem: &str) -> Parsed {
    tally.warnings.push(format!(
        "corrupt pcapng block at byte offset {offset} (type 0x{btype:08x}): {problem}; stopped \
         reading, kept the {} before it",
        super::frames(frames)
    ));
    Parsed::Stop
}

pub(super) fn truncated_block_warning(
    frames: u64,
    offset: u64,
    have: usize,
    need: usize,
) -> String {
    format!(
        "truncated capture: block at byte offset {offset} is cut off (file ends after {have} of \
         {need} bytes); kept the {} before it",
        super::frames(frames)
    )
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
