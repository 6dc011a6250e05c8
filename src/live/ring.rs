//! A TPACKET_V3 receive ring shared with the kernel by mmap: the only `unsafe` of the engine
//! besides PyO3's. The socket is opened, filtered, given its ring (PACKET_RX_RING) and bound
//! by the caller (rstdiag/livecapture.py, which also turns setup errors into one line); this
//! maps the ring and hands over its blocks one at a time.
//!
//! The protocol (Documentation/networking/packet_mmap.rst): a block belongs to user space
//! while its `block_status` has TP_STATUS_USER; the kernel writes none of it until that status
//! is set back to TP_STATUS_KERNEL. So a ready block can be read as an ordinary byte slice,
//! and everything in it (packet count, offsets, lengths) is parsed with bounds checks: a bad
//! offset ends the block, it never reads outside it.

use std::io;
use std::os::fd::RawFd;
use std::ptr::{self, NonNull};
use std::sync::atomic::{fence, Ordering};

const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// Offset of `block_status` in `struct tpacket_block_desc` (after version, offset_to_priv).
const BLOCK_STATUS: usize = 8;
/// `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`: where the `sockaddr_ll` of a packet starts.
const TPACKET3_HDRLEN: usize = 48;
/// The `sockaddr_ll` fields a cooked header needs: up to and including sll_addr[8].
const SOCKADDR_LL: usize = 20;
/// Bytes of the LINKTYPE_LINUX_SLL header built for packets of cooked sockets.
pub const SLL_HEADER: usize = 16;

/// One packet of a block, borrowed from the ring.
#[derive(Clone, Copy, Debug)]
pub struct RingPacket<'a> {
    pub sec: u32,
    pub nsec: u32,
    pub data: &'a [u8],
    pub wirelen: u32,
    /// the packet's `sockaddr_ll` (cooked sockets: the link header is built from it)
    pub sll: Option<&'a [u8]>,
}

/// The mapped ring of an AF_PACKET socket.
pub struct Ring {
    map: NonNull<u8>,
    len: usize,
    block_size: usize,
    blocks: usize,
    next: usize,
    fd: RawFd,
}

// SAFETY: the mapping is owned by this value alone (no other handle to it exists in the
// process) and is only touched through &self / &mut self, so moving it to the capture thread
// is sound.
unsafe impl Send for Ring {}

impl Ring {
    /// Map the ring of socket `fd` (`blocks` blocks of `block_size` bytes, as set up with
    /// PACKET_RX_RING). The socket must stay open while the ring lives.
    pub fn map(fd: RawFd, block_size: usize, blocks: usize) -> io::Result<Ring> {
        let len = block_size
            .checked_mul(blocks)
            .filter(|&len| len > 0 && block_size >= 64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad ring geometry"))?;
        // SAFETY: a fresh shared mapping of the socket's ring (its pages are the kernel's,
        // never swapped); the kernel checks that `len` matches the ring it allocated, and the
        // result is checked before use.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(addr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Ring {
            map,
            len,
            block_size,
            blocks,
            next: 0,
            fd,
        })
    }

    fn status_ptr(&self) -> *mut u32 {
        // SAFETY: next < blocks, so the offset lies inside the mapping; the kernel aligns
        // blocks to pages, so the u32 at offset 8 is aligned.
        unsafe {
            self.map
                .as_ptr()
                .add(self.next * self.block_size + BLOCK_STATUS)
                .cast::<u32>()
        }
    }

    fn ready(&self) -> bool {
        // SAFETY: an aligned u32 inside the mapping, written by the kernel: read volatile.
        let status = unsafe { ptr::read_volatile(self.status_ptr()) };
        // the block's contents are read after its status (pairs with the kernel's barrier)
        fence(Ordering::Acquire);
        status & TP_STATUS_USER != 0
    }

    /// Wait up to `timeout_ms` for the next block; Ok(false) when none came. A socket error
    /// (the interface went down or away) is returned as that error.
    pub fn wait(&self, timeout_ms: i32) -> io::Result<bool> {
        if self.ready() {
            return Ok(true);
        }
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(err)
            };
        }
        if pfd.revents & libc::POLLERR != 0 {
            if let Some(err) = self.socket_error() {
                return Err(err);
            }
        }
        Ok(self.ready())
    }

    fn socket_error(&self) -> Option<io::Error> {
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: SO_ERROR writes one c_int into `err`, whose size `len` gives.
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (rc == 0 && err != 0).then(|| io::Error::from_raw_os_error(err))
    }

    /// The ready block (after `wait` said so), as bytes.
    pub fn block(&self) -> &[u8] {
        // SAFETY: the block lies inside the mapping; while its status is TP_STATUS_USER the
        // kernel does not write to it, and `release` (which needs &mut self) ends the borrow.
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(self.next * self.block_size),
                self.block_size,
            )
        }
    }

    /// Give the current block back to the kernel and move to the next one.
    pub fn release(&mut self) {
        // everything read from the block happens before the kernel may reuse it
        fence(Ordering::Release);
        // SAFETY: as in `ready`.
        unsafe { ptr::write_volatile(self.status_ptr(), TP_STATUS_KERNEL) };
        self.next = (self.next + 1) % self.blocks;
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; no borrow of it outlives self.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.len);
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes([b[0], b[1]]))
}

/// The packets of one block (struct tpacket_hdr_v1, then tpacket3_hdr chained by
/// tp_next_offset), in order; stops at the first header that does not fit in the block.
pub fn packets(block: &[u8], cooked: bool) -> impl Iterator<Item = RingPacket<'_>> {
    let count = u32_at(block, 12).unwrap_or(0);
    let mut pos = u32_at(block, 16).map(|p| p as usize);
    let mut left = count;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        left -= 1;
        let at = pos?;
        let next = u32_at(block, at)? as usize;
        let sec = u32_at(block, at + 4)?;
        let nsec = u32_at(block, at + 8)?;
        let snap = u32_at(block, at + 12)? as usize;
        let wirelen = u32_at(block, at + 16)?;
        let mac = u16_at(block, at + 24)? as usize;
        let start = at.checked_add(mac)?;
        let data = block.get(start..start.checked_add(snap)?)?;
        let sll = if cooked {
            let s = at + TPACKET3_HDRLEN;
            Some(block.get(s..s + SOCKADDR_LL)?)
        } else {
            None
        };
        pos = if next == 0 {
            None
        } else {
            at.checked_add(next)
        };
        Some(RingPacket {
            sec,
            nsec,
            data,
            wirelen,
            sll,
        })
    })
}

/// The LINKTYPE_LINUX_SLL header of a packet from its `sockaddr_ll` (as libpcap builds it):
/// packet type, ARPHRD type, address length, address (8 bytes), protocol; big-endian.
pub fn sll_header(sll: &[u8]) -> [u8; SLL_HEADER] {
    let mut out = [0u8; SLL_HEADER];
    let hatype = u16_at(sll, 8).unwrap_or(0);
    let pkttype = sll.get(10).copied().unwrap_or(0);
    let halen = sll.get(11).copied().unwrap_or(0);
    out[0..2].copy_from_slice(&u16::from(pkttype).to_be_bytes());
    out[2..4].copy_from_slice(&hatype.to_be_bytes());
    out[4..6].copy_from_slice(&u16::from(halen).to_be_bytes());
    if let Some(addr) = sll.get(12..20) {
        out[6..14].copy_from_slice(addr);
    }
    if let Some(proto) = sll.get(2..4) {
        out[14..16].copy_from_slice(proto); // sll_protocol is in network order already
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }

    /// A block as the kernel lays it out: header, then packets chained by their offsets.
    fn block(packets: &[&[u8]]) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        put32(&mut b, 12, packets.len() as u32);
        put32(&mut b, 16, 48);
        let mut at = 48;
        for (i, data) in packets.iter().enumerate() {
            let mac = 66usize; // after tpacket3_hdr and sockaddr_ll, as the kernel aligns it
            let next = if i + 1 == packets.len() {
                0
            } else {
                (mac + data.len() + 15) & !15
            };
            put32(&mut b, at, next as u32);
            put32(&mut b, at + 4, 1000 + i as u32);
            put32(&mut b, at + 8, 5);
            put32(&mut b, at + 12, data.len() as u32);
            put32(&mut b, at + 16, data.len() as u32 + 10);
            b[at + 24..at + 26].copy_from_slice(&(mac as u16).to_ne_bytes());
            b[at + 48 + 2..at + 48 + 4].copy_from_slice(&0x0800u16.to_be_bytes());
            b[at + 48 + 8..at + 48 + 10].copy_from_slice(&1u16.to_ne_bytes());
            b[at + 48 + 11] = 6;
            b[at + mac..at + mac + data.len()].copy_from_slice(data);
            at += next;
        }
        b
    }

    #[test]
    fn a_blocks_packets_come_out_in_order_with_their_times_and_lengths() {
        let b = block(&[b"first", b"second packet"]);
        let got: Vec<_> = packets(&b, false).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].sec, got[0].nsec, got[0].data),
            (1000, 5, &b"first"[..])
        );
        assert_eq!((got[1].data, got[1].wirelen), (&b"second packet"[..], 23));
        assert!(got[1].sll.is_none());
    }

    #[test]
    fn offsets_outside_the_block_end_it_without_reading_past() {
        let mut b = block(&[b"first", b"second"]);
        put32(&mut b, 48, 1 << 30); // the first packet's next offset points far away
        assert_eq!(packets(&b, false).count(), 1);
        put32(&mut b, 48 + 12, 1 << 20); // and its snap length beyond the block
        assert_eq!(packets(&b, false).count(), 0);
        put32(&mut b, 12, u32::MAX); // a count that lies
        assert!(packets(&b, false).count() <= 1);
    }

    #[test]
    fn cooked_packets_get_a_linux_sll_header_from_their_address() {
        let b = block(&[b"ip packet"]);
        let p = packets(&b, true).next().expect("one packet");
        let h = sll_header(p.sll.expect("cooked"));
        assert_eq!(&h[0..6], &[0, 0, 0, 1, 0, 6]);
        assert_eq!(&h[14..16], &[0x08, 0x00]);
    }
}
