//! How the engine's time divides between its stages, on one capture: run it under
//! `/usr/bin/time` once per stage and compare CPU seconds.
//!
//!     cargo run --release --example engine_phases -- read|decode|track|judge FILE

use std::fs::File;
use std::process::ExitCode;

use rstdiag_core::capture::CaptureReader;
use rstdiag_core::decode::Decoder;
use rstdiag_core::engine::Analysis;
use rstdiag_core::flows::FlowTracker;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(stage), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: engine_phases read|decode|track|judge FILE");
        return ExitCode::from(2);
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("{path}: {err}");
            return ExitCode::from(2);
        }
    };
    let mut reader = match CaptureReader::new(file, path) {
        Ok(reader) => reader,
        Err(err) => {
            eprintln!("{path}: {err}");
            return ExitCode::from(2);
        }
    };
    let count = match stage.as_str() {
        "read" => read(&mut reader),
        "decode" => decode(&mut reader),
        "track" => track(&mut reader),
        _ => judge(&mut reader),
    };
    println!("{stage}: {count}");
    ExitCode::SUCCESS
}

fn read(reader: &mut CaptureReader<File>) -> u64 {
    let mut bytes = 0;
    while let Ok(Some(raw)) = reader.next_frame() {
        bytes += raw.data.len() as u64;
    }
    bytes
}

fn decode(reader: &mut CaptureReader<File>) -> u64 {
    let mut decoder = Decoder::new();
    let mut tcp = 0;
    while let Ok(Some(raw)) = reader.next_frame() {
        tcp += u64::from(decoder.decode(&raw).is_some());
    }
    tcp
}

fn track(reader: &mut CaptureReader<File>) -> u64 {
    let mut decoder = Decoder::new();
    let mut tracker = FlowTracker::default();
    let mut cases = Vec::new();
    while let Ok(Some(raw)) = reader.next_frame() {
        if let Some(pkt) = decoder.decode(&raw) {
            tracker.feed(pkt, &mut cases);
        }
    }
    tracker.finish(&mut cases);
    cases.len() as u64
}

fn judge(reader: &mut CaptureReader<File>) -> u64 {
    let mut analysis = Analysis::new(None);
    let mut verdicts = 0;
    if analysis.start(reader).is_err() {
        return 0;
    }
    while let Ok(true) = analysis.read(reader, 1 << 16) {
        verdicts += analysis.take().len() as u64;
    }
    analysis.finish(true);
    verdicts + analysis.take().len() as u64
}
