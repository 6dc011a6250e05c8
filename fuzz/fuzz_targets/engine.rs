//! Any bytes as a capture, through the whole engine: reader, decoder (with its tunnels),
//! tracker (a small flow table, so that eviction runs too) and rules. A panic, a hang or
//! unbounded memory is a crash; so is a report that contradicts itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rstdiag_core::capture::CaptureReader;
use rstdiag_core::engine::Analysis;
use rstdiag_core::jsonline::verdict_json;

const MAX_FLOWS: usize = 1000;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::new(data, "<fuzz>") else {
        return;
    };
    let mut analysis = Analysis::new(Some(MAX_FLOWS));
    if analysis.start(&reader).is_err() {
        return;
    }
    let mut verdicts = Vec::new();
    let mut notes = Vec::new();
    while let Ok(true) = analysis.read(&mut reader, 4096) {
        verdicts.extend(analysis.take());
        notes.extend(analysis.take_notes());
    }
    notes.extend(analysis.take_notes());
    for (frame, _) in &notes {
        assert!(*frame >= 1, "a kernel reason noted for frame 0");
    }
    analysis.absorb_reader(&reader);
    analysis.finish(true);
    verdicts.extend(analysis.take());
    check(&analysis, &verdicts);
});

/// What every report must say of itself, whatever the input.
fn check(analysis: &Analysis, verdicts: &[rstdiag_core::verdict::Verdict]) {
    let summary = analysis.summary();
    assert_eq!(summary.rsts as usize, verdicts.len());
    assert!(summary.tcp_packets <= summary.frames);
    for pair in verdicts.windows(2) {
        if let [a, b] = pair {
            assert!(a.frame < b.frame, "verdicts out of frame order");
        }
    }
    for v in verdicts {
        assert!(v.frame >= 1 && v.frame <= summary.frames, "verdict beyond the frames");
        assert!(!v.evidence.is_empty() && !v.evidence.contains('\n'));
        if let Some(original) = v.duplicate_of {
            assert!(original < v.frame, "a copy of a later RST");
        }
        let line = verdict_json(v, "<fuzz>", "1:x");
        assert!(line.starts_with("{\"file\": ") && line.ends_with('}'));
        assert!(line.bytes().all(|b| (b' '..=b'~').contains(&b)), "JSON not ASCII");
    }
    for warning in &summary.warnings {
        assert!(!warning.contains('\n'), "a warning of more than one line");
    }
}
