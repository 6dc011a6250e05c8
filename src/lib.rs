//! rstdiag's engine: everything done per packet and per RST.
//!
//! Data flows one way: `capture` (bytes to records) -> `decode` (link, tunnels, IP, TCP) ->
//! `flows` (the tracker: one case per RST) -> `rules` (pure: a case in, a verdict out) ->
//! `verdict` (the records that leave the engine) -> `engine` (one capture's run) ->
//! `python` (the PyO3 layer, built only with the `python` feature).

pub mod capture;
pub mod communityid;
pub mod decode;
pub mod engine;
pub mod flows;
pub mod front;
pub mod jsonline;
pub mod kernel_note;
#[cfg(target_os = "linux")]
pub mod live;
pub mod records;
pub mod rules;
pub mod runner;
pub mod verdict;

#[cfg(feature = "python")]
mod python;
