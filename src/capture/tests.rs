//! The reader's behaviour, ported from tests/test_pcapfile.py, on captures built byte by byte.

use super::fixtures::*;
use super::*;

/// A frame copied out of the reader's buffer.
#[derive(Clone, Debug, PartialEq)]
struct Frame {
    frame: u64,
    ts: f64,
    linktype: u32,
    data: Vec<u8>,
    wirelen: u32,
}

fn frame(frame: u64, ts: f64, linktype: u32, data: &[u8], wirelen: u32) -> Frame {
    Frame {
        frame,
        ts,
        linktype,
        data: data.to_vec(),
        wirelen,
    }
}

struct Read_ {
    frames: Vec<Frame>,
    warnings: Vec<String>,
    format: Format,
    bytes_read: u64,
    skipped: u64,
}

fn collect<R: Read>(mut reader: CaptureReader<R>) -> Result<Read_, CaptureError> {
    let mut frames = Vec::new();
    while let Some(raw) = reader.next_frame()? {
        frames.push(frame(
            raw.frame,
            raw.ts,
            raw.linktype,
            raw.data,
            raw.wirelen,
        ));
    }
    assert!(matches!(reader.next_frame(), Ok(None)), "the end is final");
    Ok(Read_ {
        frames,
        warnings: reader.warnings().to_vec(),
        format: reader.format(),
        bytes_read: reader.bytes_read(),
        skipped: reader.skipped_frames(),
    })
}

fn read(data: &[u8]) -> Read_ {
    match CaptureReader::new(data, "<stream>").and_then(collect) {
        Ok(read) => read,
        Err(error) => panic!("unexpected error: {error}"),
    }
}

fn error(data: &[u8]) -> CaptureError {
    match CaptureReader::new(data, "<stream>") {
        Ok(_) => panic!("no error"),
        Err(error) => error,
    }
}

/// A source that hands out at most `step` bytes per read, as a slow socket would.
struct Dribble<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Dribble<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let size = self.step.min(out.len()).min(self.data.len());
        let (head, rest) = self.data.split_at(size);
        out[..size].copy_from_slice(head);
        self.data = rest;
        Ok(size)
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// -- pcap ----------------------------------------------------------------------------------

#[test]
fn little_endian_microsecond_pcap() {
    let got = read(&pcap(
        &[(10, 250_000, b"abc", 70), (11, 0, b"de", 2)],
        false,
        false,
        ETHERNET,
    ));
    assert_eq!(got.format, Format::Pcap);
    assert_eq!(got.format.as_str(), "pcap");
    assert_eq!(
        got.frames,
        [
            frame(1, 10.25, ETHERNET, b"abc", 70),
            frame(2, 11.0, ETHERNET, b"de", 2)
        ]
    );
}

#[test]
fn big_endian_pcap() {
    let got = read(&pcap(&[(10, 500_000, b"xyz", 99)], true, false, RAW_IP));
    assert_eq!(got.frames, [frame(1, 10.5, RAW_IP, b"xyz", 99)]);
}

#[test]
fn nanosecond_pcap_in_both_byte_orders_is_sec_plus_frac_times_1e_9() {
    for big in [false, true] {
        let got = read(&pcap(
            &[(1_700_000_000, 123_456_789, b"p", 1)],
            big,
            true,
            ETHERNET,
        ));
        // Python: 1_700_000_000 + 123_456_789 * 1e-9
        assert_eq!(got.frames[0].ts.to_bits(), 0x41d9_54fc_4007_e6b7);
    }
}

#[test]
fn microsecond_pcap_timestamp_is_sec_plus_frac_times_1e_6() {
    let got = read(&pcap(
        &[(1_700_000_000, 123_457, b"p", 1)],
        false,
        false,
        ETHERNET,
    ));
    // Python: (1_700_000_000 + 123_457 * 1e-6).hex()
    assert_eq!(got.frames[0].ts, 1_700_000_000.0 + 123_457.0 * 1e-6);
    assert_eq!(got.frames[0].ts.to_bits(), 0x41d9_54fc_4007_e6b8);
}

#[test]
fn pcap_link_type_ignores_the_fcs_bits_of_the_header_field() {
    let data = pcap(
        &[(0, 0, b"p", 1)],
        false,
        false,
        0x1000_0000 | (4 << 28) | ETHERNET,
    );
    let reader = CaptureReader::new(data.as_slice(), "x").unwrap();
    assert_eq!(reader.linktype(), Some(ETHERNET));
    assert_eq!(collect(reader).unwrap().frames[0].linktype, ETHERNET);
}

#[test]
fn pcap_caplen_larger_than_wirelen_is_tolerated() {
    let got = read(&pcap(
        &[(0, 0, b"12345678", 4), (1, 0, b"z", 1)],
        false,
        false,
        ETHERNET,
    ));
    let data: Vec<&[u8]> = got.frames.iter().map(|f| f.data.as_slice()).collect();
    assert_eq!(data, [b"12345678".as_slice(), b"z"]);
    assert!(got.warnings.is_empty());
}

#[test]
fn pcap_with_header_only_has_no_frames() {
    let got = read(&pcap(&[], false, false, ETHERNET));
    assert!(got.frames.is_empty() && got.warnings.is_empty());
}

// -- pcapng --------------------------------------------------------------------------------

#[test]
fn pcapng_two_interfaces_with_different_link_types_and_nanosecond_resolution() {
    let data = cat(&[
        &shb(false),
        &idb(ETHERNET as u16, b"", false),
        &idb(LINUX_SLL as u16, &option(9, b"\x09", false), false),
        &epb(0, 1_700_000_000_250_000, b"eth", None, false),
        &epb(1, 1_700_000_001_000_000_500, b"sll", Some(1500), false),
    ]);
    let reader = CaptureReader::new(data.as_slice(), "x").unwrap();
    assert_eq!(reader.linktype(), None);
    let got = collect(reader).unwrap();
    assert_eq!(got.format.as_str(), "pcapng");
    assert_eq!(
        got.frames,
        [
            frame(1, 1_700_000_000.25, ETHERNET, b"eth", 3),
            frame(
                2,
                f64::from_bits(0x41d9_54fc_4040_0002),
                LINUX_SLL,
                b"sll",
                1500
            ),
        ]
    );
}

#[test]
fn pcapng_tsresol_with_high_bit_is_a_power_of_two() {
    let data = cat(&[
        &shb(false),
        &idb(1, &option(9, b"\x8a", false), false),
        &epb(0, 3 * 1024 + 512, b"x", None, false),
    ]);
    assert_eq!(read(&data).frames[0].ts, 3.5);
}

#[test]
fn pcapng_huge_tsresol_neither_overflows_nor_panics() {
    for resol in [b"\x7f", b"\xff"] {
        let data = cat(&[
            &shb(false),
            &idb(1, &option(9, resol, false), false),
            &epb(0, u64::MAX, b"x", None, false),
        ]);
        let ts = read(&data).frames[0].ts;
        assert!(ts > 0.0 && ts < 1e-18, "{ts}");
    }
}

#[test]
fn pcapng_tsoffset_adds_seconds() {
    let data = cat(&[
        &shb(false),
        &idb(1, &option(14, &1000i64.to_le_bytes(), false), false),
        &epb(0, 2_500_000, b"x", None, false),
    ]);
    assert_eq!(read(&data).frames[0].ts, 1002.5);
}

#[test]
fn pcapng_simple_packet_block_is_on_interface_0_without_timestamp() {
    let data = cat(&[
        &shb(false),
        &idb(
            RAW_IP as u16,
            &option(14, &1000i64.to_le_bytes(), false),
            false,
        ),
        &spb(b"abcd", 4, false),
        &spb(b"abcdefgh", 1500, false),
    ]);
    let got = read(&data);
    assert_eq!(
        got.frames,
        [
            frame(1, 0.0, RAW_IP, b"abcd", 4),
            // captured length: the block's room (8 bytes), the wire length being larger
            frame(2, 0.0, RAW_IP, b"abcdefgh", 1500),
        ]
    );
    assert!(got.warnings.is_empty());
}

#[test]
fn pcapng_simple_packet_block_wirelen_shorter_than_block_cuts_the_padding() {
    let data = cat(&[
        &shb(false),
        &idb(RAW_IP as u16, b"", false),
        &spb(b"abcde", 3, false),
    ]);
    assert_eq!(read(&data).frames[0].data, b"abc");
}

#[test]
fn pcapng_obsolete_packet_block() {
    let data = cat(&[
        &shb(false),
        &idb(1, b"", false),
        &packet_block(0, 7_000_000, b"old", false),
    ]);
    assert_eq!(read(&data).frames, [frame(1, 7.0, ETHERNET, b"old", 99)]);
}

#[test]
fn pcapng_sections_with_different_byte_orders_each_have_their_own_interfaces() {
    let data = cat(&[
        &shb(false),
        &idb(1, b"", false),
        &epb(0, 1_000_000, b"le", None, false),
        &shb(true),
        &idb(RAW_IP as u16, &option(9, b"\x03", true), true), // milliseconds
        &epb(0, 2_000, b"be", None, true),
        &spb(b"spb", 3, true),
        &packet_block(0, 3_000, b"pb", true),
    ]);
    let got = read(&data);
    assert_eq!(
        got.frames,
        [
            frame(1, 1.0, ETHERNET, b"le", 2),
            frame(2, 2.0, RAW_IP, b"be", 2),
            frame(3, 0.0, RAW_IP, b"spb", 3),
            frame(4, 3.0, RAW_IP, b"pb", 99),
        ]
    );
    assert!(got.warnings.is_empty());
}

#[test]
fn pcapng_blocks_other_than_packets_are_skipped_and_not_numbered() {
    let mut stats = Vec::new();
    for _ in 0..3 {
        stats.extend(0u32.to_le_bytes());
    }
    let data = cat(&[
        &shb(false),
        &idb(1, b"", false),
        &block(
            4,
            &cat(&[&option(1, b"\x0a\0\0\x01name\0", false), b"\0\0\0\0"]),
            false,
        ),
        &epb(0, 0, b"a", None, false),
        &block(5, &stats, false),
        &block(10, b"KSLT\x04\0\0\0keys", false),
        &block(0x0000_0BAD, b"\xd9\x7e\0\0custom", false),
        &block(0x4000_0001, b"local use", false),
        &epb(0, 0, b"b", None, false),
    ]);
    let got = read(&data);
    let seen: Vec<(u64, &[u8])> = got
        .frames
        .iter()
        .map(|f| (f.frame, f.data.as_slice()))
        .collect();
    assert_eq!(seen, [(1, b"a".as_slice()), (2, b"b")]);
    assert!(got.warnings.is_empty());
}

#[test]
fn pcapng_packet_on_undeclared_interface_is_numbered_skipped_and_warned_once() {
    let data = cat(&[
        &shb(false),
        &idb(1, b"", false),
        &epb(0, 0, b"a", None, false),
        &epb(3, 0, b"?", None, false),
        &epb(7, 0, b"?", None, false),
        &epb(0, 0, b"d", None, false),
    ]);
    let got = read(&data);
    let seen: Vec<(u64, &[u8])> = got
        .frames
        .iter()
        .map(|f| (f.frame, f.data.as_slice()))
        .collect();
    assert_eq!(seen, [(1, b"a".as_slice()), (4, b"d")]);
    assert_eq!(got.skipped, 2);
    assert_eq!(
        got.warnings,
        [
            "frame 2 at byte offset 84 names interface 3, which no Interface Description Block \
          of its section declares; skipped it and any others like it"
        ]
    );
}

#[test]
fn pcapng_new_section_forgets_the_interfaces_of_the_last() {
    let data = cat(&[
        &shb(false),
        &idb(1, b"", false),
        &epb(0, 0, b"a", None, false),
        &shb(false),
        &epb(0, 0, b"b", None, false),
    ]);
    let got = read(&data);
    assert_eq!(got.frames.len(), 1);
    assert!(got.warnings[0].contains("interface 0"));
}

#[test]
fn pcapng_malformed_interface_options_are_ignored_with_one_warning() {
    let bad_option = cat(&[&9u16.to_le_bytes(), &200u16.to_le_bytes(), b"\x09\0\0\0"]);
    let data = cat(&[
        &shb(false),
        &idb(1, &bad_option, false),
        &idb(RAW_IP as u16, &bad_option, false),
        &epb(0, 1_000_000, b"x", None, false),
    ]);
    let got = read(&data);
    assert_eq!(got.frames[0].ts, 1.0); // the default microseconds
    assert_eq!(
        got.warnings,
        [
            "ignored a malformed option (code 9, length 200) of the interface block at byte \
          offset 28, and any others like it"
        ]
    );
}

#[test]
fn pcapng_more_interfaces_than_the_cap_stop_with_a_warning() {
    let one = idb(1, b"", false);
    let mut declared = shb(false);
    for _ in 0..pcapng::MAX_INTERFACES {
        declared.extend_from_slice(&one);
    }
    declared.extend(epb(0, 0, b"a", None, false));
    let data = cat(&[&declared, &one, &epb(0, 0, b"b", None, false)]);
    let got = read(&data);
    assert_eq!(got.frames.len(), 1);
    assert_eq!(
        got.warnings,
        [format!(
            "corrupt pcapng block at byte offset {} (type 0x00000001): more than 65536 \
             interfaces; stopped reading, kept the 1 frame before it",
            declared.len()
        )]
    );
}

// -- damaged captures ----------------------------------------------------------------------

#[test]
fn truncated_pcap_keeps_the_frames_before_the_cut_and_warns_with_the_offset() {
    let a = [b'a'; 50];
    let whole = pcap(
        &[(0, 0, &a, 50), (0, 0, &a, 50), (0, 0, &a, 50)],
        false,
        false,
        1,
    );
    let got = read(&whole[..whole.len() - 30]);
    assert_eq!(got.frames.len(), 2);
    assert_eq!(
        got.warnings,
        [
            "truncated capture: record of frame 3 at byte offset 156 is cut off (file ends after \
          36 of 66 bytes); kept the 2 frames before it"
        ]
    );
}

#[test]
fn pcap_cut_inside_a_record_header_warns_too() {
    let whole = pcap(&[(0, 0, b"a", 1), (0, 0, b"a", 1)], false, false, 1);
    let got = read(&whole[..whole.len() - 10]);
    assert_eq!(got.frames.len(), 1);
    assert_eq!(
        got.warnings,
        [
            "truncated capture: record of frame 2 at byte offset 41 is cut off (file ends after \
          7 of 16 bytes); kept the 1 frame before it"
        ]
    );
}

#[test]
fn pcap_cut_after_the_caplen_field_still_asks_for_the_whole_header() {
    let whole = pcap(&[(0, 0, b"a", 1), (0, 0, b"abcd", 4)], false, false, 1);
    let got = read(&whole[..whole.len() - 6]);
    assert_eq!(
        got.warnings,
        [
            "truncated capture: record of frame 2 at byte offset 41 is cut off (file ends after \
          14 of 16 bytes); kept the 1 frame before it"
        ]
    );
}

#[test]
fn truncated_pcapng_keeps_the_frames_before_the_cut() {
    let whole = small_pcapng();
    let got = read(&whole[..whole.len() - 5]);
    assert_eq!(got.frames.len(), 4);
    assert_eq!(
        got.warnings,
        [format!(
            "truncated capture: block at byte offset {} is cut off (file ends after 63 of 68 \
             bytes); kept the 4 frames before it",
            whole.len() - 68
        )]
    );
}

#[test]
fn pcapng_cut_inside_a_block_header_asks_for_12_bytes() {
    let whole = cat(&[
        &shb(false),
        &idb(1, b"", false),
        &epb(0, 0, b"a", None, false),
    ]);
    let got = read(&whole[..whole.len() - 30]);
    assert_eq!(
        got.warnings,
        [
            "truncated capture: block at byte offset 48 is cut off (file ends after 6 of 12 \
          bytes); kept the 0 frames before it"
        ]
    );
}

#[test]
fn corrupt_pcap_caplen_stops_with_a_warning() {
    let mut data = pcap(&[(0, 0, b"a", 1)], false, false, 1);
    for field in [0u32, 0, 4_000_000_000, 60] {
        data.extend(field.to_le_bytes());
    }
    data.extend([b'b'; 100]);
    let got = read(&data);
    assert_eq!(got.frames.len(), 1);
    assert_eq!(
        got.warnings,
        [
            "corrupt record header at byte offset 41 (frame 2): caplen 4000000000 exceeds 262144; \
          stopped reading"
        ]
    );
}

#[test]
fn pcap_caplen_just_over_the_cap_is_corrupt_even_when_wholly_present() {
    let big = vec![0u8; 262_145];
    let got = read(&pcap(&[(0, 0, &big, 1)], false, false, 1));
    assert!(got.frames.is_empty());
    assert!(got.warnings[0].contains("caplen 262145 exceeds 262144"));
}

#[test]
fn pcapng_bad_block_length_stops_with_a_warning() {
    let good = cat(&[
        &shb(false),
        &idb(1, b"", false),
        &epb(0, 0, b"a", None, false),
    ]);
    let cases = [
        (30u32, "block length 30 is not a multiple of 4"),
        (
            8,
            "block length 8 is shorter than the 32 bytes this block needs",
        ),
        (32 << 20, "block length 33554432 exceeds 16777216"),
        (40, "trailing length 1650614882 differs from leading 40"),
    ];
    for (length, problem) in cases {
        let mut bad = cat(&[
            &epb(0, 0, &[b'b'; 20], None, false),
            &epb(0, 0, b"c", None, false),
        ]);
        bad[4..8].copy_from_slice(&length.to_le_bytes());
        let got = read(&cat(&[&good, &bad]));
        assert_eq!(got.frames.len(), 1);
        assert_eq!(
            got.warnings,
            [format!(
                "corrupt pcapng block at byte offset {} (type 0x00000006): {problem}; stopped \
                 reading, kept the 1 frame before it",
                good.len()
            )]
        );
    }
}

#[test]
fn pcapng_caplen_beyond_its_block_stops_with_a_warning() {
    let mut bad = epb(0, 0, &[b'b'; 8], None, false);
    bad[20..24].copy_from_slice(&9u32.to_le_bytes());
    let got = read(&cat(&[&shb(false), &idb(1, b"", false), &bad]));
    assert!(got.frames.is_empty());
    assert_eq!(
        got.warnings,
        ["corrupt pcapng block at byte offset 48 (type 0x00000006): caplen 9 exceeds the block; \
          stopped reading, kept the 0 frames before it"]
    );
}

#[test]
fn pcapng_later_section_with_bad_byte_order_magic_stops_with_a_warning() {
    let mut second = shb(false);
    second[8..12].copy_from_slice(b"\xde\xad\xbe\xef");
    let got = read(&cat(&[&small_pcapng(), &second]));
    assert_eq!(got.frames.len(), 5);
    assert_eq!(
        got.warnings,
        [format!(
            "corrupt pcapng block at byte offset {} (type 0x0a0d0d0a): byte-order magic \
             0xdeadbeef; stopped reading, kept the 5 frames before it",
            small_pcapng().len()
        )]
    );
}

#[test]
fn non_capture_bytes_are_an_error_naming_the_magic() {
    let gzip = [0x1f, 0x8b, 0x08, 0x00, 0x12, 0x34];
    let cases: [(&[u8], &str); 7] = [
        (b"hello world\n", "starts with 0x68656c6c: text?"),
        (&gzip, "starts with 0x1f8b0800: gzip?"),
        (
            &epb(0, 0, b"x", None, false),
            "starts with 0x06000000: pcapng blocks without a section header?",
        ),
        (b"\x00\x01", "starts with 0x0001"),
        (b"BZh91AY", "starts with 0x425a6839: bzip2?"),
        (
            b"\xa1\xb2\xcd\x34rest",
            "starts with 0xa1b2cd34: modified pcap (Kuznetzov), unsupported?",
        ),
        (
            b"\x00\x00\x00\x03",
            "starts with 0x00000003: pcapng blocks without a section header?",
        ),
    ];
    for (data, named) in cases {
        let error = error(data);
        assert_eq!(
            error.to_string(),
            format!("not a pcap or pcapng file ({named})")
        );
        assert_eq!(error.offset, Some(0));
    }
}

#[test]
fn empty_file_is_an_error() {
    assert_eq!(
        error(b""),
        CaptureError::new("empty file".to_string(), Some(0))
    );
}

#[test]
fn pcap_header_shorter_than_24_bytes_is_an_error_at_offset_0() {
    let data = pcap(&[], false, false, 1);
    assert_eq!(
        error(&data[..20]),
        CaptureError::new(
            "truncated pcap file header: the file ends after 20 of 24 bytes".to_string(),
            Some(0)
        )
    );
}

#[test]
fn pcapng_first_section_header_damage_is_an_error_at_offset_0() {
    let mut bad_magic = small_pcapng();
    bad_magic[8..12].copy_from_slice(b"\xde\xad\xbe\xef");
    let with_length = |length: u32| {
        let mut data = small_pcapng();
        data[4..8].copy_from_slice(&length.to_le_bytes());
        data
    };
    let mut bad_trailer = small_pcapng();
    bad_trailer[24..28].copy_from_slice(&32u32.to_le_bytes());
    let cases = [
        (bad_magic, "corrupt pcapng section header: byte-order magic 0xdeadbeef is neither 1a2b3c4d nor 4d3c2b1a"),
        (with_length(26), "corrupt pcapng section header: block length 26 is not a multiple of 4"),
        (with_length(20), "corrupt pcapng section header: block length 20 is shorter than the 28 bytes this block needs"),
        (with_length(1 << 30), "corrupt pcapng section header: block length 1073741824 exceeds 16777216"),
        (bad_trailer, "corrupt pcapng section header: trailing length 32 differs from leading length 28"),
        (shb(false)[..20].to_vec(), "truncated pcapng section header: the file ends after 20 of 28 bytes"),
        (shb(false)[..10].to_vec(), "truncated pcapng section header: the file ends after 10 of 28 bytes"),
    ];
    for (data, message) in cases {
        assert_eq!(
            error(&data),
            CaptureError::new(message.to_string(), Some(0))
        );
    }
}

#[test]
fn cuts_and_byte_changes_anywhere_never_panic_nor_loop() {
    for whole in [small_pcap(), small_pcapng()] {
        for cut in 0..=whole.len() {
            for (at, value) in [
                (None, 0),
                (Some(cut / 2), 0xFF),
                (Some(cut / 3), 0x00),
                (Some(cut / 5), 0x80),
            ] {
                let mut data = whole[..cut].to_vec();
                if let Some(byte) = at.and_then(|at| data.get_mut(at)) {
                    *byte = value;
                }
                if let Ok(got) = CaptureReader::new(data.as_slice(), "x").and_then(collect) {
                    assert!(got.frames.len() <= data.len() / 12);
                    assert!(got.warnings.len() <= 2);
                }
            }
        }
    }
}

// -- streams -------------------------------------------------------------------------------

#[test]
fn short_reads_give_the_same_frames_and_warnings() {
    let whole = small_pcapng();
    for data in [
        small_pcap(),
        whole.clone(),
        whole[..whole.len() - 5].to_vec(),
    ] {
        let expected = read(&data);
        for step in [1, 5, 64] {
            let reader = CaptureReader::new(Dribble { data: &data, step }, "x").unwrap();
            let got = collect(reader).unwrap();
            assert_eq!(got.frames, expected.frames);
            assert_eq!(got.warnings, expected.warnings);
            assert_eq!(got.bytes_read, data.len() as u64);
        }
    }
}

#[test]
fn records_larger_than_one_read_are_read_whole() {
    let big = vec![7u8; READ_SIZE + 1000];
    let mut data = cat(&[&shb(false), &idb(1, b"", false)]);
    for i in 0..3 {
        data.extend(epb(0, i, &big, None, false));
    }
    let got = read(&data);
    assert_eq!(got.frames.len(), 3);
    assert!(got.frames.iter().all(|f| f.data == big));
}

#[test]
fn frames_are_yielded_without_waiting_for_more_bytes() {
    /// Hands out the file once, then fails the test if asked again.
    struct Once(Option<Vec<u8>>);
    impl Read for Once {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let data = self
                .0
                .take()
                .expect("read again though whole records were buffered");
            out[..data.len()].copy_from_slice(&data);
            Ok(data.len())
        }
    }
    let mut reader = CaptureReader::new(Once(Some(small_pcap())), "x").unwrap();
    for _ in 0..5 {
        assert!(reader.next_frame().unwrap().is_some());
    }
}

#[test]
fn interrupted_reads_are_retried() {
    struct Interrupting<'a>(&'a [u8], bool);
    impl Read for Interrupting<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(std::io::Error::from(ErrorKind::Interrupted));
            }
            self.0.read(out)
        }
    }
    let data = small_pcap();
    let got = collect(CaptureReader::new(Interrupting(&data, false), "x").unwrap()).unwrap();
    assert_eq!(got.frames.len(), 5);
}

#[test]
fn read_error_is_a_capture_error_with_python_strerror() {
    struct Failing(u32);
    impl Read for Failing {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            self.0 += 1;
            if self.0 > 1 {
                return Err(std::io::Error::from_raw_os_error(5));
            }
            let head = &small_pcap()[..30];
            out[..30].copy_from_slice(head);
            Ok(30)
        }
    }
    let mut reader = CaptureReader::new(Failing(0), "disk.pcap").unwrap();
    assert_eq!(
        reader.next_frame().map(|frame| frame.is_some()),
        Err(CaptureError::new(
            "cannot read disk.pcap: Input/output error".to_string(),
            Some(30)
        ))
    );
}

#[test]
fn bytes_read_reaches_the_file_size() {
    let data = small_pcap();
    assert_eq!(read(&data).bytes_read, data.len() as u64);
}

// -- the repository's captures -------------------------------------------------------------

fn count_file(relative: &str) -> (usize, Vec<String>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let file = std::fs::File::open(&path).unwrap();
    let got = collect(CaptureReader::new(file, relative).unwrap()).unwrap();
    assert_eq!(got.bytes_read, std::fs::metadata(&path).unwrap().len());
    (got.frames.len(), got.warnings)
}

#[test]
fn sample_pcapng_has_the_frames_tshark_counts() {
    assert_eq!(count_file("pcaps/sample.pcapng"), (119, vec![]));
}

#[test]
fn closed_port_pcap_has_the_frames_tshark_counts() {
    assert_eq!(count_file("pcaps/closed-port-v4.pcap"), (2, vec![]));
}

/// A section header of version `major`.`minor` (the fixtures write 1.0).
fn shb_version(major: u16, minor: u16, big: Big) -> Vec<u8> {
    let mut header = shb(big);
    let (hi, lo) = if big {
        (major.to_be_bytes(), minor.to_be_bytes())
    } else {
        (major.to_le_bytes(), minor.to_le_bytes())
    };
    if let Some(field) = header.get_mut(12..16) {
        field.copy_from_slice(&[hi[0], hi[1], lo[0], lo[1]]);
    }
    header
}

#[test]
fn pcapng_of_a_major_version_other_than_1_is_refused_with_its_version() {
    for (major, minor) in [(2, 0), (9, 1), (0xFFFF, 0), (0, 0)] {
        let err = error(&shb_version(major, minor, false));
        assert_eq!(
            err.message,
            format!(
                "unsupported pcapng section header: version {major}.{minor}, and rstdiag \
                 reads version 1"
            )
        );
        assert_eq!(err.offset, Some(0));
    }
}

#[test]
fn pcapng_minor_versions_of_1_are_read() {
    for minor in [0, 2, 7] {
        let data = cat(&[
            &shb_version(1, minor, true),
            &idb(RAW_IP as u16, b"", true),
            &epb(0, 0, b"\x45", None, true),
        ]);
        assert_eq!(read(&data).frames.len(), 1);
    }
}

#[test]
fn a_later_section_of_another_major_version_ends_the_reading_with_a_warning() {
    let first = cat(&[
        &shb(false),
        &idb(RAW_IP as u16, b"", false),
        &epb(0, 0, b"\x45", None, false),
    ]);
    let data = cat(&[
        &first,
        &shb_version(2, 0, false),
        &idb(RAW_IP as u16, b"", false),
        &epb(0, 0, b"\x45", None, false),
    ]);
    let read = read(&data);
    assert_eq!(read.frames.len(), 1);
    assert_eq!(
        read.warnings,
        vec![format!(
            "corrupt pcapng block at byte offset {} (type 0x0a0d0d0a): version 2.0, and rstdiag \
             reads version 1; stopped reading, kept the 1 frame before it",
            first.len()
        )]
    );
}
