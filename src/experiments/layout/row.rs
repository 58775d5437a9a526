//! The rows of `layout`, typed: a [`LayoutRow`] is the device, the strategy and one [`RowData`]
//! variant per phase, so a row cannot carry the fields of another phase. On disk the rows keep
//! the one flat shape they have always had (every field of every phase, `null` where unused, the
//! same names and order in JSON and CSV): [`FlatRow`] is that shape, and serde converts through it
//! (`into` / `try_from`), because the `csv` crate writes only flat structs (no `flatten`, no
//! nested structs). Imports only `summary` (the totals and fragmentation results, which are rows
//! too) and the strategy enum.

use serde::{Deserialize, Serialize};

use super::summary::{Fragmentation, Totals};
use crate::memory::Strategy;

/// The phases of the rows, in the order they are written; serialised as the `phase` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Memory accounting at one [`Moment`].
    Snapshot,
    /// One tensor allocated.
    Alloc,
    /// The sums over the allocated set.
    Total,
    /// One tensor freed by the fragmentation pattern.
    Free,
    /// One attempt of the largest-allocation search.
    Probe,
    /// The fragmentation result.
    Fragmentation,
    /// One tensor freed at the end.
    Cleanup,
}

/// The moments of the snapshot rows (their `name` on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Moment {
    Baseline,
    AfterAlloc,
    AfterPatternFree,
    AfterCleanup,
}

impl Moment {
    /// The name written in the row.
    pub fn name(self) -> &'static str {
        match self {
            Moment::Baseline => "baseline",
            Moment::AfterAlloc => "after_alloc",
            Moment::AfterPatternFree => "after_pattern_free",
            Moment::AfterCleanup => "after_cleanup",
        }
    }

    fn parse(s: &str) -> Option<Moment> {
        [
            Moment::Baseline,
            Moment::AfterAlloc,
            Moment::AfterPatternFree,
            Moment::AfterCleanup,
        ]
        .into_iter()
        .find(|m| m.name() == s)
    }
}

/// Memory accounting at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnapshotRow {
    pub moment: Moment,
    /// `cuMemGetInfo` free, MemAvailable and MemFree, bytes.
    pub device_free_bytes: u64,
    pub mem_available_bytes: u64,
    pub mem_free_bytes: u64,
}

/// One tensor allocated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AllocRow {
    /// The tensor's position in the layout (0-based), its name and component (the name without
    /// the layer prefix).
    pub index: u64,
    pub name: String,
    pub component: String,
    pub dtype: Option<String>,
    pub elements: Option<u64>,
    /// Bytes requested, and bytes actually mapped (`vmm` rounds up).
    pub bytes: u64,
    pub mapped_bytes: u64,
    /// Host clock around the allocation and a synchronize, ms.
    pub alloc_ms: f64,
    /// `managed+prefetch`: cuMemPrefetchAsync to the device, GPU ms.
    pub prefetch_ms: Option<f64>,
    /// `--touch`: the touch kernel over the tensor, GPU ms.
    pub touch_ms: Option<f64>,
    /// The strategy's steps, timed apart (`vmm`, `registered`).
    pub note: Option<String>,
}

/// One tensor freed, by the pattern (`free`, with its component) or at the end (`cleanup`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FreedRow {
    pub index: u64,
    pub name: Option<String>,
    pub component: Option<String>,
    pub bytes: u64,
    /// Host clock around the free and a synchronize, ms.
    pub free_ms: f64,
}

/// One attempt of the largest-allocation search.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeRow {
    /// Bytes attempted.
    pub bytes: u64,
    pub ok: bool,
    /// Host clock around the allocation and a synchronize (when it succeeded), ms.
    pub alloc_ms: Option<f64>,
    pub prefetch_ms: Option<f64>,
    pub touch_ms: Option<f64>,
    /// Why it failed.
    pub note: Option<String>,
}

/// What a row holds: one variant per [`Phase`].
#[derive(Debug, Clone, PartialEq)]
pub enum RowData {
    Snapshot(SnapshotRow),
    Alloc(AllocRow),
    Total(Totals),
    Free(FreedRow),
    Probe(ProbeRow),
    Fragmentation(Fragmentation),
    Cleanup(FreedRow),
}

/// One measurement. The same value is the JSON row, the CSV row and the source of the tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "FlatRow", try_from = "FlatRow")]
pub struct LayoutRow {
    pub device: i32,
    pub strategy: Strategy,
    pub data: RowData,
}

impl LayoutRow {
    pub fn new(device: i32, strategy: Strategy, data: RowData) -> LayoutRow {
        LayoutRow {
            device,
            strategy,
            data,
        }
    }

    pub fn phase(&self) -> Phase {
        match &self.data {
            RowData::Snapshot(_) => Phase::Snapshot,
            RowData::Alloc(_) => Phase::Alloc,
            RowData::Total(_) => Phase::Total,
            RowData::Free(_) => Phase::Free,
            RowData::Probe(_) => Phase::Probe,
            RowData::Fragmentation(_) => Phase::Fragmentation,
            RowData::Cleanup(_) => Phase::Cleanup,
        }
    }

    /// The tensor's position (alloc, free, cleanup).
    pub fn index(&self) -> Option<u64> {
        match &self.data {
            RowData::Alloc(a) => Some(a.index),
            RowData::Free(f) | RowData::Cleanup(f) => Some(f.index),
            _ => None,
        }
    }

    pub fn as_alloc(&self) -> Option<&AllocRow> {
        match &self.data {
            RowData::Alloc(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_probe(&self) -> Option<&ProbeRow> {
        match &self.data {
            RowData::Probe(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_snapshot(&self) -> Option<&SnapshotRow> {
        match &self.data {
            RowData::Snapshot(s) => Some(s),
            _ => None,
        }
    }

    /// The `bytes` column: requested (alloc, free, cleanup), attempted (probe), the sum requested
    /// (total), the largest allocation that succeeded (fragmentation), 0 (snapshot).
    pub fn bytes(&self) -> u64 {
        match &self.data {
            RowData::Snapshot(_) => 0,
            RowData::Alloc(a) => a.bytes,
            RowData::Total(t) => t.requested_bytes,
            RowData::Free(f) | RowData::Cleanup(f) => f.bytes,
            RowData::Probe(p) => p.bytes,
            RowData::Fragmentation(f) => f.largest_bytes,
        }
    }
}

/// The on-disk shape of a row: every phase's fields, `None` where the phase does not use them.
/// Field names and order are the file format (JSON keys, CSV header); do not change them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlatRow {
    pub device: i32,
    pub strategy: Strategy,
    pub phase: Phase,
    pub index: Option<u64>,
    pub name: Option<String>,
    pub component: Option<String>,
    pub dtype: Option<String>,
    pub elements: Option<u64>,
    pub bytes: u64,
    pub mapped_bytes: Option<u64>,
    pub alloc_ms: Option<f64>,
    pub prefetch_ms: Option<f64>,
    pub touch_ms: Option<f64>,
    pub free_ms: Option<f64>,
    pub ok: Option<bool>,
    pub tensors: Option<u64>,
    pub device_free_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
    pub mem_free_bytes: Option<u64>,
    pub device_free_drop_bytes: Option<i64>,
    pub mem_available_drop_bytes: Option<i64>,
    pub overhead_bytes: Option<i64>,
    pub overhead_pct: Option<f64>,
    pub rounding_2mib_bytes: Option<u64>,
    pub freed_bytes: Option<u64>,
    pub largest_freed_bytes: Option<u64>,
    pub free_total_bytes: Option<u64>,
    pub free_total_of: Option<String>,
    pub bound_bytes: Option<u64>,
    pub resolution_bytes: Option<u64>,
    pub attempts: Option<u32>,
    pub reached_bound: Option<bool>,
    pub note: Option<String>,
}

impl FlatRow {
    /// A row with the common fields set and every phase's own field empty.
    fn base(r: &LayoutRow) -> FlatRow {
        FlatRow {
            device: r.device,
            strategy: r.strategy,
            phase: r.phase(),
            index: None,
            name: None,
            component: None,
            dtype: None,
            elements: None,
            bytes: r.bytes(),
            mapped_bytes: None,
            alloc_ms: None,
            prefetch_ms: None,
            touch_ms: None,
            free_ms: None,
            ok: None,
            tensors: None,
            device_free_bytes: None,
            mem_available_bytes: None,
            mem_free_bytes: None,
            device_free_drop_bytes: None,
            mem_available_drop_bytes: None,
            overhead_bytes: None,
            overhead_pct: None,
            rounding_2mib_bytes: None,
            freed_bytes: None,
            largest_freed_bytes: None,
            free_total_bytes: None,
            free_total_of: None,
            bound_bytes: None,
            resolution_bytes: None,
            attempts: None,
            reached_bound: None,
            note: None,
        }
    }
}

impl From<LayoutRow> for FlatRow {
    fn from(r: LayoutRow) -> FlatRow {
        let base = FlatRow::base(&r);
        match r.data {
            RowData::Snapshot(s) => FlatRow {
                name: Some(s.moment.name().into()),
                device_free_bytes: Some(s.device_free_bytes),
                mem_available_bytes: Some(s.mem_available_bytes),
                mem_free_bytes: Some(s.mem_free_bytes),
                ..base
            },
            RowData::Alloc(a) => FlatRow {
                index: Some(a.index),
                name: Some(a.name),
                component: Some(a.component),
                dtype: a.dtype,
                elements: a.elements,
                mapped_bytes: Some(a.mapped_bytes),
                alloc_ms: Some(a.alloc_ms),
                prefetch_ms: a.prefetch_ms,
                touch_ms: a.touch_ms,
                note: a.note,
                ..base
            },
            RowData::Total(t) => FlatRow {
                tensors: Some(t.tensors),
                mapped_bytes: Some(t.mapped_bytes),
                device_free_drop_bytes: Some(t.device_free_drop_bytes),
                mem_available_drop_bytes: Some(t.mem_available_drop_bytes),
                overhead_bytes: Some(t.overhead_bytes),
                overhead_pct: Some(t.overhead_pct),
                rounding_2mib_bytes: Some(t.rounding_2mib_bytes),
                ..base
            },
            RowData::Free(f) | RowData::Cleanup(f) => FlatRow {
                index: Some(f.index),
                name: f.name,
                component: f.component,
                free_ms: Some(f.free_ms),
                ..base
            },
            RowData::Probe(p) => FlatRow {
                alloc_ms: p.alloc_ms,
                prefetch_ms: p.prefetch_ms,
                touch_ms: p.touch_ms,
                ok: Some(p.ok),
                note: p.note,
                ..base
            },
            RowData::Fragmentation(f) => FlatRow {
                name: Some(f.pattern),
                tensors: Some(f.freed_tensors),
                freed_bytes: Some(f.freed_bytes),
                largest_freed_bytes: Some(f.largest_freed_bytes),
                device_free_bytes: Some(f.device_free_bytes),
                mem_available_bytes: Some(f.mem_available_bytes),
                free_total_bytes: Some(f.free_total_bytes),
                free_total_of: Some(f.free_total_of),
                bound_bytes: Some(f.bound_bytes),
                resolution_bytes: Some(f.resolution_bytes),
                attempts: Some(f.attempts),
                reached_bound: Some(f.reached_bound),
                ..base
            },
        }
    }
}

/// A field a phase needs, or a sentence naming the phase and the field.
fn need<T>(v: Option<T>, phase: &str, field: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("a layout `{phase}` row without `{field}`"))
}

impl TryFrom<FlatRow> for LayoutRow {
    type Error = String;

    /// Reads a row back. Fields that older builds did not write get the defaults those builds
    /// implied (as the summary always read them); a field a phase cannot do without is an error.
    fn try_from(f: FlatRow) -> Result<LayoutRow, String> {
        let phase = f.phase;
        let data = match phase {
            Phase::Snapshot => {
                let name = need(f.name, "snapshot", "name")?;
                RowData::Snapshot(SnapshotRow {
                    moment: Moment::parse(&name).ok_or_else(|| {
                        format!("a layout snapshot row at unknown moment `{name}`")
                    })?,
                    device_free_bytes: need(f.device_free_bytes, "snapshot", "device_free_bytes")?,
                    mem_available_bytes: f.mem_available_bytes.unwrap_or(0),
                    mem_free_bytes: f.mem_free_bytes.unwrap_or(0),
                })
            }
            Phase::Alloc => RowData::Alloc(AllocRow {
                index: need(f.index, "alloc", "index")?,
                name: need(f.name, "alloc", "name")?,
                component: f.component.unwrap_or_default(),
                dtype: f.dtype,
                elements: f.elements,
                bytes: f.bytes,
                mapped_bytes: f.mapped_bytes.unwrap_or(f.bytes),
                alloc_ms: need(f.alloc_ms, "alloc", "alloc_ms")?,
                prefetch_ms: f.prefetch_ms,
                touch_ms: f.touch_ms,
                note: f.note,
            }),
            Phase::Total => RowData::Total(Totals {
                tensors: f.tensors.unwrap_or(0),
                requested_bytes: f.bytes,
                mapped_bytes: f.mapped_bytes.unwrap_or(f.bytes),
                device_free_drop_bytes: f.device_free_drop_bytes.unwrap_or(0),
                mem_available_drop_bytes: f.mem_available_drop_bytes.unwrap_or(0),
                overhead_bytes: f.overhead_bytes.unwrap_or(0),
                overhead_pct: f.overhead_pct.unwrap_or(0.0),
                rounding_2mib_bytes: f.rounding_2mib_bytes.unwrap_or(0),
            }),
            Phase::Free | Phase::Cleanup => {
                let ph = if phase == Phase::Free {
                    "free"
                } else {
                    "cleanup"
                };
                let freed = FreedRow {
                    index: need(f.index, ph, "index")?,
                    name: f.name,
                    component: f.component,
                    bytes: f.bytes,
                    free_ms: need(f.free_ms, ph, "free_ms")?,
                };
                if phase == Phase::Free {
                    RowData::Free(freed)
                } else {
                    RowData::Cleanup(freed)
                }
            }
            Phase::Probe => RowData::Probe(ProbeRow {
                bytes: f.bytes,
                ok: need(f.ok, "probe", "ok")?,
                alloc_ms: f.alloc_ms,
                prefetch_ms: f.prefetch_ms,
                touch_ms: f.touch_ms,
                note: f.note,
            }),
            Phase::Fragmentation => RowData::Fragmentation(Fragmentation {
                pattern: f.name.unwrap_or_default(),
                freed_tensors: f.tensors.unwrap_or(0),
                freed_bytes: f.freed_bytes.unwrap_or(0),
                largest_freed_bytes: f.largest_freed_bytes.unwrap_or(0),
                device_free_bytes: f.device_free_bytes.unwrap_or(0),
                mem_available_bytes: f.mem_available_bytes.unwrap_or(0),
                free_total_bytes: f.free_total_bytes.unwrap_or(0),
                free_total_of: f.free_total_of.unwrap_or_default(),
                bound_bytes: f.bound_bytes.unwrap_or(0),
                resolution_bytes: f.resolution_bytes.unwrap_or(0),
                largest_bytes: f.bytes,
                attempts: f.attempts.unwrap_or(0),
                reached_bound: f.reached_bound.unwrap_or(false),
            }),
        };
        Ok(LayoutRow::new(f.device, f.strategy, data))
    }
}
