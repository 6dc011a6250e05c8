//! Small captures built byte by byte (fuzz/seeds.py's builders), so each test shows its bytes.

pub(super) const ETHERNET: u32 = 1;
pub(super) const RAW_IP: u32 = 101;
pub(super) const LINUX_SLL: u32 = 113;

/// Byte order of a built file: true for big-endian.
pub(super) type Big = bool;

fn u16b(value: u16, big: Big) -> [u8; 2] {
    if big {
        value.to_be_bytes()
    } else {
        value.to_le_bytes()
    }
}

fn u32b(value: u32, big: Big) -> [u8; 4] {
    if big {
        value.to_be_bytes()
    } else {
        value.to_le_bytes()
    }
}

/// A classic pcap file; packets are (seconds, fraction, data, wirelen).
pub(super) fn pcap(
    packets: &[(u32, u32, &[u8], u32)],
    big: Big,
    nano: bool,
    network: u32,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(u32b(if nano { 0xA1B2_3C4D } else { 0xA1B2_C3D4 }, big));
    out.extend(u16b(2, big));
    out.extend(u16b(4, big));
    for field in [0, 0, 262_144, network] {
        out.extend(u32b(field, big));
    }
    for (sec, frac, data, wirelen) in packets {
        for field in [*sec, *frac, data.len() as u32, *wirelen] {
            out.extend(u32b(field, big));
        }
        out.extend_from_slice(data);
    }
    out
}

/// A pcapng block: type, total length, body padded to 32 bits, total length again.
pub(super) fn block(btype: u32, body: &[u8], big: Big) -> Vec<u8> {
    let mut body = body.to_vec();
    body.resize(body.len().next_multiple_of(4), 0);
    let length = body.len() as u32 + 12;
    let mut out = Vec::new();
    out.extend(u32b(btype, big));
    out.extend(u32b(length, big));
    out.extend(body);
    out.extend(u32b(length, big));
    out
}

pub(super) fn option(code: u16, value: &[u8], big: Big) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(u16b(code, big));
    out.extend(u16b(value.len() as u16, big));
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

pub(super) fn shb(big: Big) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(u32b(0x1A2B_3C4D, big));
    body.extend(u16b(1, big));
    body.extend(u16b(0, big));
    body.extend([0xFF; 8]); // section length -1
    block(0x0A0D_0D0A, &body, big)
}

pub(super) fn idb(linktype: u16, options: &[u8], big: Big) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(u16b(linktype, big));
    body.extend(u16b(0, big));
    body.extend(u32b(0, big));
    if !options.is_empty() {
        body.extend_from_slice(options);
        body.extend(option(0, b"", big));
    }
    block(1, &body, big)
}

pub(super) fn epb(iface: u32, ticks: u64, data: &[u8], wirelen: Option<u32>, big: Big) -> Vec<u8> {
    let mut body = Vec::new();
    let wirelen = wirelen.unwrap_or(data.len() as u32);
    for field in [
        iface,
        (ticks >> 32) as u32,
        ticks as u32,
        data.len() as u32,
        wirelen,
    ] {
        body.extend(u32b(field, big));
    }
    body.extend_from_slice(data);
    block(6, &body, big)
}

pub(super) fn spb(data: &[u8], wirelen: u32, big: Big) -> Vec<u8> {
    let mut body = u32b(wirelen, big).to_vec();
    body.extend_from_slice(data);
    block(3, &body, big)
}

/// The obsolete Packet Block (type 2), wire length 99.
pub(super) fn packet_block(iface: u16, ticks: u64, data: &[u8], big: Big) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(u16b(iface, big));
    body.extend(u16b(0, big));
    for field in [(ticks >> 32) as u32, ticks as u32, data.len() as u32, 99] {
        body.extend(u32b(field, big));
    }
    body.extend_from_slice(data);
    block(2, &body, big)
}

pub(super) fn small_pcap() -> Vec<u8> {
    let data: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 40 + usize::from(i)]).collect();
    let packets: Vec<(u32, u32, &[u8], u32)> = (0..5u32)
        .map(|i| {
            (
                1_700_000_000 + i,
                1000 * i,
                data[i as usize].as_slice(),
                60 + i,
            )
        })
        .collect();
    pcap(&packets, false, false, ETHERNET)
}

pub(super) fn small_pcapng() -> Vec<u8> {
    let mut out = shb(false);
    out.extend(idb(ETHERNET as u16, b"", false));
    out.extend(idb(RAW_IP as u16, &option(9, b"\x09", false), false));
    for i in 0..5u8 {
        let ticks = 1_700_000_000_000_000 + u64::from(i);
        out.extend(epb(
            u32::from(i % 2),
            ticks,
            &vec![i; 30 + usize::from(i)],
            None,
            false,
        ));
    }
    out
}
