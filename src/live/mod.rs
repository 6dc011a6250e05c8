//! Live capture at line rate: a TPACKET_V3 ring read by a thread of its own, which numbers
//! the frames, writes the `-w` file and feeds the engine, with no Python step per packet.
//! Python (rstdiag/live.py) only ticks: it takes final and provisional verdicts, sweeps by
//! wall time and flushes the file a few times a second, through the shared state's lock.

pub mod pcapout;
pub mod ring;
pub mod session;
