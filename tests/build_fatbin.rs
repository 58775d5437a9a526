//! What `build.rs` embeds: one fatbin with SASS (GPU machine code) for every architecture the tool
//! supports and `compute_80` PTX for newer GPUs to JIT, and that exact fatbin inside the
//! `cumemlab` binary. No GPU needed.
//!
//! The toolkit `scripts/install-cuda-toolkit.sh` installs has no `cuobjdump`, so the fatbin is read
//! here by hand. Layout, as nvcc 13.0 writes it (little-endian): a 16-byte header (magic
//! `0xBA55ED50` u32, version u16, header size u16, size of the entries u64), then entries, each
//! with kind u16 at 0 (1 = PTX, 2 = ELF cubin), its header size u32 at 4, its payload size u64 at
//! 8 and the architecture u32 at 28 (80 for sm_80). The reading is cross-checked against the
//! payload itself: every ELF entry must be a CUDA ELF (`e_machine` 190) whose `e_flags` name the
//! same architecture (bits 8-15 in this ELF ABI), so a misread layout fails the test rather than
//! passing it.

mod common;

/// The fatbin build.rs wrote, as the binary embeds it (`src/driver/kernels.rs` includes the same
/// file).
const FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/kernels.fatbin"));

/// The architectures build.rs compiled SASS for (it skips those an old nvcc cannot build).
const BUILT_SASS: &str = env!("CUMEMLAB_SASS_ARCHES");

/// What the README promises: SASS for these, PTX for compute_80.
const WANT_SASS: &[u32] = &[80, 86, 89, 90, 100, 120, 121];
const WANT_PTX: &[u32] = &[80];

const EM_CUDA: u16 = 190;

#[derive(Debug, PartialEq)]
struct Entry {
    kind: u16,
    arch: u32,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Every entry of a fatbin, checking each ELF payload against its entry header.
fn entries(b: &[u8]) -> Vec<Entry> {
    assert!(b.len() >= 16, "a fatbin is at least its 16-byte header");
    assert_eq!(u32_at(b, 0), 0xBA55_ED50, "fatbin magic");
    let header = u16_at(b, 6) as usize;
    let end = header + u64_at(b, 8) as usize;
    assert_eq!(end, b.len(), "the header's size covers the whole file");
    let mut out = Vec::new();
    let mut at = header;
    while at < end {
        let kind = u16_at(b, at);
        let head = u32_at(b, at + 4) as usize;
        let size = u64_at(b, at + 8) as usize;
        let arch = u32_at(b, at + 28);
        assert!(head >= 32 && at + head + size <= end, "entry at {at} fits");
        let payload = &b[at + head..at + head + size];
        match kind {
            1 => {}
            2 => {
                assert_eq!(&payload[..4], b"\x7fELF", "ELF entry at {at}");
                assert_eq!(u16_at(payload, 18), EM_CUDA, "a CUDA ELF at {at}");
                let flags = u32_at(payload, 48);
                assert_eq!((flags >> 8) & 0xff, arch, "e_flags name sm_{arch} at {at}");
            }
            k => panic!("unknown fatbin entry kind {k} at {at}"),
        }
        out.push(Entry { kind, arch });
        at += head + size;
    }
    out
}

fn arches(e: &[Entry], kind: u16) -> Vec<u32> {
    let mut v: Vec<u32> = e
        .iter()
        .filter(|x| x.kind == kind)
        .map(|x| x.arch)
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn fatbin_has_sass_for_every_arch_and_compute_80_ptx() {
    let e = entries(FATBIN);
    assert_eq!(arches(&e, 2), WANT_SASS, "SASS (ELF) entries: {e:?}");
    assert_eq!(arches(&e, 1), WANT_PTX, "PTX entries: {e:?}");
    let built: Vec<u32> = BUILT_SASS.split(',').map(|a| a.parse().unwrap()).collect();
    assert_eq!(built, WANT_SASS, "build.rs reports what it compiled");
}

#[test]
fn the_reader_rejects_what_is_not_such_a_fatbin() {
    // A wrong magic, a size that does not cover the file, and an ELF entry whose payload names
    // another architecture than its header: each must fail the reading above.
    let mut bad_magic = FATBIN.to_vec();
    bad_magic[0] ^= 0xff;
    let mut short = FATBIN.to_vec();
    short.truncate(FATBIN.len() - 8);
    let mut wrong_arch = FATBIN.to_vec();
    let first_elf = {
        let mut at = u16_at(FATBIN, 6) as usize;
        while u16_at(FATBIN, at) != 2 {
            at += u32_at(FATBIN, at + 4) as usize + u64_at(FATBIN, at + 8) as usize;
        }
        at
    };
    wrong_arch[first_elf + 28] ^= 0x01;
    for (what, b) in [
        ("bad magic", bad_magic),
        ("short", short),
        ("wrong arch", wrong_arch),
    ] {
        let r = std::panic::catch_unwind(|| entries(&b));
        assert!(r.is_err(), "{what} was read as a fatbin");
    }
}

#[test]
fn the_binary_embeds_this_fatbin() {
    let bin = std::fs::read(common::bin()).expect("the cumemlab binary is readable");
    let head = &FATBIN[..64];
    let found = bin
        .windows(head.len())
        .enumerate()
        .filter(|(_, w)| *w == head)
        .any(|(i, _)| bin.get(i..i + FATBIN.len()) == Some(FATBIN));
    assert!(
        found,
        "{} does not contain the {} bytes of kernels.fatbin",
        common::bin().display(),
        FATBIN.len()
    );
}

/// The kernels only tests and benchmarks use (kernels/test/*.cu): a fatbin of their own.
const TEST_FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/test-kernels.fatbin"));

/// The `extern "C" __global__` kernel names of the `.cu` files of `dir` (under the repository).
fn kernel_names(dir: &str) -> Vec<String> {
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    let mut names = Vec::new();
    for e in std::fs::read_dir(std::path::Path::new(&root).join(dir)).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "cu") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for part in text.split("__global__ void ").skip(1) {
            names.push(part.split('(').next().unwrap().trim().to_string());
        }
    }
    assert!(!names.is_empty(), "no kernels in {dir}");
    names
}

/// Whether `hay` holds the bytes of `needle` (through `str::contains`: the standard library's
/// search is optimised even in a debug build, and the binary is large).
fn holds(hay: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(hay).contains(needle)
}

#[test]
fn test_kernels_are_in_their_own_fatbin_and_out_of_the_binary() {
    // Built like the production one: SASS for every architecture and the PTX fallback.
    let e = entries(TEST_FATBIN);
    assert_eq!(arches(&e, 2), WANT_SASS, "test fatbin SASS: {e:?}");
    assert_eq!(arches(&e, 1), WANT_PTX, "test fatbin PTX: {e:?}");
    // Each kernel name is a NUL-terminated symbol in the fatbin that holds it, and the test
    // kernels' names appear nowhere in the production fatbin.
    let test = kernel_names("kernels/test");
    for name in &test {
        let sym = format!("{name}\0");
        assert!(holds(TEST_FATBIN, &sym), "{name} not in the test fatbin");
        assert!(!holds(FATBIN, name), "{name} is in the production fatbin");
    }
    for name in kernel_names("kernels") {
        let sym = format!("{name}\0");
        assert!(holds(FATBIN, &sym), "{name} not in the production fatbin");
        assert!(!test.contains(&name), "{name} is defined for both fatbins");
    }
    // And the binary carries none of them (it embeds only the production fatbin).
    let bin = std::fs::read(common::bin()).expect("the cumemlab binary is readable");
    let bin = String::from_utf8_lossy(&bin);
    for name in &test {
        assert!(
            !bin.contains(name.as_str()),
            "{} holds the test kernel {name}",
            common::bin().display()
        );
    }
}

/// The parameter sizes in bytes of kernel `name` as the fatbin's PTX declares them
/// (`.param .u64 NAME_param_0, ...`), or `None` when no PTX entry has that name.
fn ptx_params(fatbin: &[u8], name: &str) -> Option<Vec<usize>> {
    let text = String::from_utf8_lossy(fatbin);
    let entry = format!(".entry {name}(");
    let start = text.find(&entry)? + entry.len();
    let end = start + text[start..].find(')')?;
    Some(
        text[start..end]
            .split(',')
            .map(|p| {
                let ty = p.split_whitespace().nth(1).expect("`.param .TYPE NAME`");
                ty.trim_start_matches(".u")
                    .trim_start_matches(".b")
                    .trim_start_matches(".s")
                    .parse::<usize>()
                    .unwrap_or_else(|_| panic!("{name}: parameter type {ty}"))
                    / 8
            })
            .collect(),
    )
}

#[test]
fn every_launch_passes_the_parameters_its_kernel_declares() {
    use cumemlab::driver::load_kernels::LOAD_KERNEL_PARAMS;
    use cumemlab::driver::{FILL_PARAMS, FILL_PREFIX, KERNEL_PARAMS};
    for (name, params) in KERNEL_PARAMS.into_iter().chain(LOAD_KERNEL_PARAMS) {
        assert_eq!(
            ptx_params(FATBIN, name).as_deref(),
            Some(params),
            "{name}: the PTX against src/driver/kernels.rs"
        );
    }
    // Every fill-shaped test kernel, the one made wrong on purpose apart.
    for name in kernel_names("kernels/test") {
        let got = ptx_params(TEST_FATBIN, &name);
        assert!(name.starts_with(FILL_PREFIX), "{name}");
        if name.ends_with("bad_params") {
            assert_eq!(got.as_deref(), Some(&[8usize, 8][..]), "{name}");
        } else {
            assert_eq!(got.as_deref(), Some(&FILL_PARAMS[..]), "{name}");
        }
    }
}
