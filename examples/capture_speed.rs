//! Walks a capture with the reader and reports frames per second:
//! `cargo run --release --example capture_speed -- FILE`

use std::time::Instant;

use rstdiag_core::capture::CaptureReader;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: capture_speed FILE")?;
    let start = Instant::now();
    let mut reader = CaptureReader::new(std::fs::File::open(&path)?, &path)?;
    let (mut frames, mut bytes, mut last_ts) = (0u64, 0u64, 0f64);
    while let Some(frame) = reader.next_frame()? {
        frames += 1;
        bytes += frame.data.len() as u64;
        last_ts = frame.ts;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{frames} frames, {bytes} captured bytes, last ts {last_ts}, {:.3} s: {:.0} frames/s, \
         {} warnings",
        seconds,
        frames as f64 / seconds,
        reader.warnings().len()
    );
    Ok(())
}
