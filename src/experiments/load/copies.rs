//! `load --copies`: the host↔device copy matrix. `cuMemcpyHtoD`/`DtoH`, synchronous (one call per
//! piece) and asynchronous (every piece queued on a stream, one synchronise), from and to
//! pageable, pinned and registered host memory, in pieces of 4 KiB to 1 GiB: many small copies
//! (at most 4096 of them) against one large copy of the same total, and the device-to-device
//! baseline at each total. The small-copy regime is where a forum report saw model loads 10x
//! slower from pageable memory (NVIDIA developer forum thread 354506: 30-40 s, 2-4 s pinned).
//! Imports: the driver's copies, the memory layer's allocations and guards, stats.

use std::time::Instant;

use serde::Serialize;

use crate::driver::copy::{dtoh_chunks, htod_chunks};
use crate::error::{Error, Result};
use crate::experiments::{Gpu, check_interrupt};
use crate::memory::{AllocOptions, Allocation, Strategy, allocate};
use crate::report::table::new_table;
use crate::stats::{Summary, fmt_spread};
use crate::units::{KIB, MIB, fmt_bytes, gbps};

/// Most pieces in one measurement (4 KiB pieces then total 16 MiB).
const MAX_PIECES: u64 = 4096;

/// One cell of the matrix over its runs.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct CopyRow {
    /// `HtoD`, `DtoH` or `DtoD`.
    pub direction: String,
    /// `pageable`, `pinned`, `registered`, or `device` for the baseline.
    pub host_memory: String,
    /// `sync` or `async`.
    pub mode: String,
    pub piece_bytes: u64,
    pub total_bytes: u64,
    pub pieces: u64,
    pub n: u32,
    pub ms_median: f64,
    pub ms_min: f64,
    pub ms_max: f64,
    /// total_bytes over the time, GB/s (1e9).
    pub gbps_median: f64,
    pub gbps_min: f64,
    pub gbps_max: f64,
}

/// (piece, total) cells: each piece size with up to [`MAX_PIECES`] pieces, then one large copy of
/// every total that appears.
pub fn cells(max: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for piece in [4 * KIB, 64 * KIB, MIB, 16 * MIB, 256 * MIB, 1024 * MIB] {
        if piece > max {
            break;
        }
        out.push((piece, (piece * MAX_PIECES).min(max) / piece * piece));
    }
    let totals: Vec<u64> = out.iter().map(|c| c.1).collect();
    for t in totals {
        if !out.contains(&(t, t)) {
            out.push((t, t));
        }
    }
    out.sort_by_key(|&(p, t)| (t, p));
    out
}

fn row(dir: &str, host: &str, mode: &str, piece: u64, total: u64, ms: &[f64]) -> Option<CopyRow> {
    let s = Summary::of(ms)?;
    let g = |m: f64| gbps(total, m);
    Some(CopyRow {
        direction: dir.into(),
        host_memory: host.into(),
        mode: mode.into(),
        piece_bytes: piece,
        total_bytes: total,
        pieces: total / piece,
        n: s.runs,
        ms_median: s.median,
        ms_min: s.min,
        ms_max: s.max,
        gbps_median: g(s.median),
        gbps_min: g(s.max),
        gbps_max: g(s.min),
    })
}

/// Times `f` `repeat` times after one discarded warm-up; host ms.
fn timed(repeat: u32, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    f()?;
    let mut v = Vec::new();
    for _ in 0..repeat {
        check_interrupt()?;
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(v)
}

/// Runs the matrix up to `max` bytes; rows go to `push`, skipped host kinds to `skip`.
pub fn run_matrix(
    gpu: &Gpu,
    max: u64,
    repeat: u32,
    mut guard: impl FnMut(Strategy, u64) -> Result<Option<String>>,
    mut push: impl FnMut(CopyRow) -> Result<()>,
    mut skip: impl FnMut(String) -> Result<()>,
) -> Result<()> {
    let cells = cells(max);
    let top = cells.iter().map(|c| c.1).max().unwrap_or(max);
    if let Some(why) = guard(Strategy::Device, 2 * top)? {
        return Err(Error::usage(format!(
            "--copies-max {}: {why}",
            fmt_bytes(top)
        )));
    }
    let dev = allocate(
        &gpu.ctx,
        &gpu.stream,
        Strategy::Device,
        top,
        &AllocOptions::default(),
    )?;
    let dev2 = allocate(
        &gpu.ctx,
        &gpu.stream,
        Strategy::Device,
        top,
        &AllocOptions::default(),
    )?;
    let c = &gpu.ctx;
    for &(piece, total) in cells.iter().filter(|c| c.0 == c.1) {
        let ms = timed(repeat, || {
            Ok(gpu
                .kernels
                .copy(&gpu.stream, dev2.device_ptr(), dev.device_ptr(), total)
                .map(|_| ())?)
        })?;
        push_some(&mut push, row("DtoD", "device", "sync", piece, total, &ms))?;
    }
    for kind in ["pageable", "pinned", "registered"] {
        let strategy = match kind {
            "pageable" => Strategy::Pageable,
            "pinned" => Strategy::Pinned,
            _ => Strategy::Registered,
        };
        if let Some(why) = guard(strategy, top)? {
            skip(format!("copies from {kind} memory: {why}"))?;
            continue;
        }
        let mut host = host_buffer(gpu, strategy, top)?;
        let Some(buf) = host.host_slice() else {
            return Err(Error::Failed(format!("{kind} memory has no host view")));
        };
        buf.fill(0x5A);
        for &(piece, total) in &cells {
            for (mode, stream) in [("sync", None), ("async", Some(gpu.stream.as_ref()))] {
                let p = piece as usize;
                let src = &buf[..total as usize];
                let ms = timed(repeat, || {
                    Ok(htod_chunks(c, stream, dev.device_ptr(), src, p)?)
                })?;
                push_some(&mut push, row("HtoD", kind, mode, piece, total, &ms))?;
                let dst = &mut buf[..total as usize];
                let ms = timed(repeat, || {
                    Ok(dtoh_chunks(c, stream, dst, dev.device_ptr(), p)?)
                })?;
                push_some(&mut push, row("DtoH", kind, mode, piece, total, &ms))?;
            }
        }
    }
    Ok(())
}

fn push_some(push: &mut impl FnMut(CopyRow) -> Result<()>, r: Option<CopyRow>) -> Result<()> {
    match r {
        Some(r) => push(r),
        None => Ok(()),
    }
}

/// Host memory of `strategy`: pageable memory is a plain anonymous mapping (the memory layer's
/// `pageable` strategy, which makes no CUDA call), so it works on every device.
fn host_buffer(gpu: &Gpu, strategy: Strategy, bytes: u64) -> Result<Box<dyn Allocation>> {
    Ok(allocate(
        &gpu.ctx,
        &gpu.stream,
        strategy,
        bytes,
        &AllocOptions::default(),
    )?)
}

/// The matrix as a table: one line per cell.
pub fn render_copies(rows: &[CopyRow]) -> String {
    let mut t = new_table(&[
        "direction",
        "host memory",
        "mode",
        "piece",
        "total",
        "pieces",
        "n",
        "GB/s median [min-max]",
        "ms median",
    ]);
    for r in rows {
        let s = Summary {
            median: r.gbps_median,
            min: r.gbps_min,
            max: r.gbps_max,
            cv: 0.0,
            runs: r.n,
        };
        t.add_row(vec![
            r.direction.clone(),
            r.host_memory.clone(),
            r.mode.clone(),
            fmt_bytes(r.piece_bytes),
            fmt_bytes(r.total_bytes),
            r.pieces.to_string(),
            r.n.to_string(),
            fmt_spread(&s, 2),
            format!("{:.3}", r.ms_median),
        ]);
    }
    format!("{t}\n")
}

/// Pageable against pinned at each piece size (HtoD, sync), where both were measured.
pub fn copy_findings(rows: &[CopyRow]) -> Vec<String> {
    let find = |host: &str, piece: u64, total: u64| {
        rows.iter().find(|r| {
            r.direction == "HtoD"
                && r.mode == "sync"
                && r.host_memory == host
                && r.piece_bytes == piece
                && r.total_bytes == total
        })
    };
    let mut out = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.direction == "HtoD" && r.mode == "sync" && r.host_memory == "pinned")
    {
        if let Some(p) = find("pageable", r.piece_bytes, r.total_bytes) {
            out.push(format!(
                "HtoD {} total in {} pieces of {}: pinned {:.2} GB/s, pageable {:.2} GB/s ({:.1}x).",
                fmt_bytes(r.total_bytes),
                r.pieces,
                fmt_bytes(r.piece_bytes),
                r.gbps_median,
                p.gbps_median,
                r.gbps_median / p.gbps_median.max(1e-9)
            ));
        }
    }
    out
}

/// How close the fastest warm load came to the bus: a single pinned `HtoD` copy of the largest
/// total is what the host-to-device link gives; a path below it loses time in its own steps
/// (reading, pinning, page faults), one near it is limited by the link (PCIe on a discrete card).
pub fn bus_finding(loads: &[super::LoadRow], copies: &[CopyRow]) -> Option<String> {
    let best = super::render::summarize(loads)
        .into_iter()
        .filter(|s| s.state == "warm")
        .max_by(|a, b| a.gbps.median.total_cmp(&b.gbps.median))?;
    let bus = copies
        .iter()
        .filter(|c| c.direction == "HtoD" && c.host_memory == "pinned" && c.pieces == 1)
        .max_by_key(|c| c.total_bytes)?;
    let share = best.gbps.median / bus.gbps_median.max(1e-9);
    Some(format!(
        "The fastest warm load ({}, {:.2} GB/s) reached {:.0}% of one pinned HtoD copy of {} ({:.2} GB/s): {}.",
        best.path,
        best.gbps.median,
        100.0 * share,
        fmt_bytes(bus.total_bytes),
        bus.gbps_median,
        if share >= 0.8 {
            "the host-to-device link is the limit, not the path"
        } else {
            "the path's own steps (reads, pinning, page faults) cost more than the link"
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::GIB;

    #[test]
    fn cells_pair_small_pieces_with_one_large_copy() {
        let c = cells(GIB);
        assert!(c.contains(&(4 * KIB, 16 * MIB)));
        assert!(c.contains(&(16 * MIB, 16 * MIB)));
        assert!(c.contains(&(64 * KIB, 256 * MIB)));
        assert!(c.contains(&(256 * MIB, 256 * MIB)));
        assert!(c.contains(&(MIB, GIB)));
        assert!(c.contains(&(GIB, GIB)));
        assert!(c.iter().all(|&(p, t)| t / p <= MAX_PIECES && t % p == 0));
        let small = cells(MIB);
        assert_eq!(small, vec![(4 * KIB, MIB), (64 * KIB, MIB), (MIB, MIB)]);
    }

    fn cell(host: &str, piece: u64, total: u64, gbps: f64) -> CopyRow {
        let ms = total as f64 / gbps / 1e6;
        row(
            "HtoD",
            host,
            "sync",
            piece,
            total,
            &[ms, ms * 1.1, ms * 0.9],
        )
        .unwrap()
    }

    #[test]
    fn copy_table_and_findings() {
        let rows = vec![
            cell("pageable", 4 * KIB, 16 * MIB, 0.5),
            cell("pinned", 4 * KIB, 16 * MIB, 2.0),
            cell("pinned", GIB, GIB, 50.0),
        ];
        let t = render_copies(&rows);
        let want = "| HtoD      | pageable    | sync | 4 KiB | 16 MiB | 4096   | 3 | 0.50 [0.45-0.56]      | 33.554    |";
        assert!(t.lines().any(|l| l == want), "{t}");
        let f = copy_findings(&rows);
        assert_eq!(
            f,
            vec!["HtoD 16 MiB total in 4096 pieces of 4 KiB: pinned 2.00 GB/s, pageable 0.50 GB/s (4.0x).".to_string()]
        );
        let mut load = crate::experiments::load::LoadRow {
            path: "pinned-staging".into(),
            state: "warm".into(),
            run: 1,
            data_bytes: GIB,
            tensors: 1,
            resident_before_bytes: GIB,
            wall_ms: 30.0,
            gbps: 45.0,
            first_tensor_ms: 1.0,
            cache_growth_bytes: 0,
            min_mem_available_bytes: 0,
            peak_rss_bytes: 0,
            pinned_bytes: 0,
            kernel_ms: 0.0,
            checksum_ok: true,
            note: String::new(),
        };
        let b = bus_finding(std::slice::from_ref(&load), &rows).unwrap();
        assert!(
            b.contains(
                "reached 90% of one pinned HtoD copy of 1 GiB (50.00 GB/s): the host-to-device link"
            ),
            "{b}"
        );
        load.gbps = 10.0;
        assert!(bus_finding(&[load], &rows).unwrap().contains("own steps"));
    }
}
