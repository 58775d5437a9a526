//! Build script: finds the CUDA toolkit once, generates the driver-API FFI with bindgen (dynamic
//! loading: nothing links against libcuda at build time, so the binary runs on hosts with no GPU),
//! and compiles `kernels/*.cu` with nvcc into one fatbin that the binary embeds.
//!
//! The `cc` crate finds and configures the CUDA compiler (`cc::Build::new().cuda(true)`), so the
//! variables Rust users expect work here as in any `-sys` crate: `NVCC` (and its per-target forms
//! `NVCC_<target>`, `TARGET_NVCC`, `HOST_NVCC`) picks nvcc, `CXX` picks the host compiler nvcc is
//! given with `-ccbin` (for a cross build to aarch64, cc's choice for `TARGET`, e.g.
//! `aarch64-linux-gnu-g++`), `CXXFLAGS`/`CRATE_CC_NO_DEFAULTS` shape the host-compiler flags, nvcc's
//! own `NVCC_PREPEND_FLAGS`/`NVCC_APPEND_FLAGS` are honoured by nvcc and tracked by cc for
//! rebuilds, and a bad variable gets cc's error message. The fatbin holds device code only, so it
//! is the same for either target: the host compiler only preprocesses the kernels.
//!
//! One part does not go through cc: **running nvcc with `--fatbin`**. cc's `compile` produces object
//! files and a static archive (`lib<name>.a`) to link into the crate, with the CUDA runtime
//! (`cudart`) next to it; this tool binds the driver API and loads its kernels with
//! `cuModuleLoadData` from one embedded fatbin, so it wants neither an object nor the runtime. So
//! build.rs asks cc for the configured compiler (`Build::try_get_compiler`: path, arguments,
//! environment) and runs that command itself with `--fatbin` and the `-gencode` list.
//!
//! The toolkit (for `cuda.h`, and for nvcc when no `NVCC` variable names one) is looked for at the
//! `NVCC` variable's toolkit, `$CUDA_HOME`, `$CUDA_PATH`, `nvcc` on `PATH`, `/usr/local/cuda` and
//! `.cuda-toolkit/`. With no `NVCC` variable set, cc would run a bare `nvcc` from `PATH`, so
//! build.rs sets `NVCC` to the found toolkit's nvcc first: headers and compiler then match.
//!
//! Every failure ends the build with one sentence naming what is missing and the script that
//! installs it (`scripts/install-cuda-toolkit.sh`).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every driver function the project calls, with the reason it is needed. Names are the exported
/// symbols (`cuda.h` maps `cuMemAlloc` to `cuMemAlloc_v2` and so on). Keep this list in step with
/// `src/driver`: a function used there but missing here does not compile, and one listed here but
/// never used is dead weight.
const DRIVER_FUNCTIONS: &[(&str, &str)] = &[
    // Library, errors, devices.
    ("cuInit", "initialise the driver"),
    (
        "cuDriverGetVersion",
        "driver version for `info` and result files",
    ),
    ("cuGetErrorName", "error names in DriverError"),
    ("cuGetErrorString", "error descriptions in DriverError"),
    ("cuDeviceGetCount", "enumerate devices"),
    ("cuDeviceGet", "device handle by ordinal"),
    ("cuDeviceGetName", "device name"),
    ("cuDeviceGetUuid_v2", "stable device identity in results"),
    ("cuDeviceGetPCIBusId", "PCI bus id in results"),
    ("cuDeviceTotalMem_v2", "total device memory"),
    (
        "cuDeviceGetAttribute",
        "unified-memory attributes, SM count, bus width",
    ),
    // Contexts, streams, events.
    ("cuDevicePrimaryCtxRetain", "one primary context per device"),
    (
        "cuDevicePrimaryCtxRelease_v2",
        "release the primary context",
    ),
    ("cuCtxSetCurrent", "bind the context to the calling thread"),
    ("cuCtxSynchronize", "synchronise around host-timed phases"),
    ("cuStreamCreate", "the stream kernels run on"),
    ("cuStreamSynchronize", "wait for a stream"),
    ("cuStreamDestroy_v2", "free a stream"),
    ("cuEventCreate", "GPU-side timing"),
    ("cuEventRecord", "GPU-side timing"),
    ("cuEventSynchronize", "GPU-side timing"),
    ("cuEventElapsedTime_v2", "GPU-side timing"),
    ("cuEventDestroy_v2", "free an event"),
    // Modules and launches.
    ("cuModuleLoadData", "load the embedded fatbin"),
    ("cuModuleUnload", "unload it"),
    ("cuModuleGetFunction", "kernel handles"),
    ("cuLaunchKernel", "launch kernels"),
    (
        "cuOccupancyMaxActiveBlocksPerMultiprocessor",
        "launch geometry from the device",
    ),
    // Memory: information, copies, sets.
    (
        "cuMemGetInfo_v2",
        "free/total device memory (GB10: the kernel's MemFree)",
    ),
    ("cuMemsetD8_v2", "poison buffers, plant wrong bytes"),
    ("cuMemsetD32_v2", "memset baseline"),
    ("cuMemcpyDtoD_v2", "copy baseline"),
    ("cuMemcpyHtoD_v2", "small uploads in tests"),
    ("cuMemcpyDtoH_v2", "kernel results back to the host"),
    ("cuMemcpyHtoDAsync_v2", "load: staged uploads, copy matrix"),
    ("cuMemcpyDtoHAsync_v2", "load: copy matrix"),
    // Strategy `device`.
    ("cuMemAlloc_v2", "strategy device"),
    ("cuMemFree_v2", "strategy device"),
    // Strategy `managed`.
    ("cuMemAllocManaged", "strategy managed"),
    ("cuMemPrefetchAsync_v2", "managed+prefetch"),
    ("cuMemAdvise_v2", "managed+advise"),
    // Strategies `pinned` and `registered`.
    ("cuMemHostAlloc", "strategy pinned"),
    ("cuMemFreeHost", "strategy pinned"),
    (
        "cuMemHostGetDevicePointer_v2",
        "device address of pinned/registered memory",
    ),
    ("cuMemHostRegister_v2", "strategy registered"),
    ("cuMemHostUnregister", "strategy registered"),
    // Strategy `pool`.
    ("cuDeviceGetDefaultMemPool", "strategy pool"),
    ("cuMemPoolSetAttribute", "pool release threshold"),
    ("cuMemPoolTrimTo", "return pool memory after a run"),
    ("cuMemAllocAsync", "strategy pool"),
    ("cuMemFreeAsync", "strategy pool"),
    // Strategy `vmm`.
    ("cuMemGetAllocationGranularity", "strategy vmm rounding"),
    ("cuMemAddressReserve", "strategy vmm"),
    ("cuMemAddressFree", "strategy vmm"),
    ("cuMemCreate", "strategy vmm"),
    ("cuMemRelease", "strategy vmm"),
    ("cuMemMap", "strategy vmm"),
    ("cuMemUnmap", "strategy vmm"),
    ("cuMemSetAccess", "strategy vmm"),
];

/// Macros of `cuda.h` the project uses (flags of the calls above).
const DRIVER_CONSTANTS: &str =
    "CUDA_VERSION|CU_MEMHOSTALLOC_.*|CU_MEMHOSTREGISTER_.*|CU_MEM_ATTACH_.*|CU_DEVICE_CPU";

/// GPU architectures the fatbin carries SASS for; the last entry is the PTX fallback.
const SASS_ARCHES: &[&str] = &["80", "86", "89", "90", "100", "120", "121"];
const PTX_ARCH: &str = "80";

const INSTALL_HINT: &str = "run scripts/install-cuda-toolkit.sh (it installs what is missing)";

fn fail(msg: &str) -> ! {
    // One sentence, on a line of its own, is what cargo shows first.
    eprintln!("\nerror: {msg}\n");
    std::process::exit(1);
}

fn main() {
    for var in [
        "CUDA_HOME",
        "CUDA_PATH",
        "PATH",
        "LIBCLANG_PATH",
        "CUMEMLAB_NVCC_FLAGS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for var in nvcc_variables() {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-changed=build.rs");

    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let out = PathBuf::from(
        env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR is not set: build with cargo")),
    );
    let toolkit = find_toolkit(&manifest).unwrap_or_else(|| {
        fail(&format!(
            "no CUDA toolkit found (looked at $NVCC, $CUDA_HOME, $CUDA_PATH, nvcc on PATH, /usr/local/cuda and \
             .cuda-toolkit/): {INSTALL_HINT}"
        ))
    });
    println!(
        "cargo:rustc-env=CUMEMLAB_BUILD_TOOLKIT={}",
        toolkit.display()
    );

    default_nvcc(&toolkit);
    generate_bindings(&toolkit, &out);
    compile_kernels(&manifest, &out);
}

/// The toolkit root: a folder with `bin/nvcc` and `include/cuda.h`.
fn find_toolkit(manifest: &Path) -> Option<PathBuf> {
    let ok = |p: &Path| p.join("bin/nvcc").is_file() && p.join("include/cuda.h").is_file();
    let mut candidates: Vec<PathBuf> = Vec::new();
    // An nvcc named for cc (`NVCC` and its per-target forms) brings its own headers, unless it is
    // a wrapper outside a toolkit.
    for var in nvcc_variables() {
        if let Some(v) = env::var_os(var).filter(|v| !v.is_empty())
            && let Ok(real) = fs::canonicalize(v)
            && let Some(root) = real.parent().and_then(Path::parent)
        {
            candidates.push(root.to_path_buf());
        }
    }
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Ok(v) = env::var(var)
            && !v.is_empty()
        {
            candidates.push(PathBuf::from(v));
        }
    }
    if let Ok(path) = env::var("PATH") {
        for dir in env::split_paths(&path) {
            let nvcc = dir.join("nvcc");
            if nvcc.is_file()
                && let Ok(real) = fs::canonicalize(&nvcc)
                && let Some(root) = real.parent().and_then(Path::parent)
            {
                candidates.push(root.to_path_buf());
            }
        }
    }
    candidates.push(PathBuf::from("/usr/local/cuda"));
    candidates.push(manifest.join(".cuda-toolkit/nvidia/cu13"));
    candidates.into_iter().find(|p| ok(p))
}

fn generate_bindings(toolkit: &Path, out: &Path) {
    let header = toolkit.join("include/cuda.h");
    let mut builder = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .clang_arg(format!("-I{}", toolkit.join("include").display()))
        .dynamic_library_name("CudaDriver")
        .dynamic_link_require_all(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .layout_tests(false)
        .generate_comments(false)
        .derive_default(true)
        .allowlist_var(DRIVER_CONSTANTS)
        .allowlist_type("CUmemAttach_flags_enum");
    for (name, _why) in DRIVER_FUNCTIONS {
        builder = builder.allowlist_function(*name);
    }
    // bindgen panics when it cannot load libclang; turn that into the one-sentence failure.
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()));
    std::panic::set_hook(prev);
    let bindings = match result {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => fail(&format!(
            "bindgen could not read {}: {e}; {INSTALL_HINT}",
            header.display()
        )),
        Err(_) => fail(&format!(
            "libclang (needed by bindgen) was not found; {INSTALL_HINT}, or set LIBCLANG_PATH"
        )),
    };
    let text = bindings.to_string();
    for (name, _) in DRIVER_FUNCTIONS {
        if !text.contains(&format!("pub {name}:")) {
            fail(&format!(
                "{} does not declare {name}: the toolkit is too old (CUDA 12.8 or newer is needed); {INSTALL_HINT}",
                header.display()
            ));
        }
    }
    if let Err(e) = fs::write(out.join("cuda_sys.rs"), text) {
        fail(&format!("cannot write the generated bindings: {e}"));
    }
}

fn compile_kernels(manifest: &Path, out: &Path) {
    let kdir = manifest.join("kernels");
    let mut sources: Vec<PathBuf> = fs::read_dir(&kdir)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", kdir.display())))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .collect();
    sources.sort();
    if sources.is_empty() {
        fail(&format!("no kernels found in {}", kdir.display()));
    }
    // One translation unit that includes every kernel file: one fatbin, one module.
    let mut unit =
        String::from("// generated by build.rs: every kernels/*.cu in one translation unit\n");
    for s in &sources {
        unit.push_str(&format!("#include \"{}\"\n", s.display()));
    }
    let unit_path = out.join("all_kernels.cu");
    if let Err(e) = fs::write(&unit_path, unit) {
        fail(&format!("cannot write {}: {e}", unit_path.display()));
    }

    let (mut cmd, nvcc) = configured_nvcc();
    let supported = supported_arches(&nvcc);
    let mut skipped = Vec::new();
    cmd.arg("--fatbin")
        .arg("-o")
        .arg(out.join("kernels.fatbin"));
    for a in SASS_ARCHES {
        if supported.is_empty() || supported.iter().any(|s| s == a) {
            cmd.arg(format!("-gencode=arch=compute_{a},code=sm_{a}"));
        } else {
            skipped.push(*a);
        }
    }
    cmd.arg(format!(
        "-gencode=arch=compute_{PTX_ARCH},code=compute_{PTX_ARCH}"
    ));
    if !skipped.is_empty() {
        println!(
            "cargo:warning=nvcc at {} cannot build sm_{}: those GPUs will JIT the compute_{PTX_ARCH} PTX (use CUDA 12.9+ for all)",
            nvcc.display(),
            skipped.join(", sm_")
        );
    }
    if let Ok(extra) = env::var("CUMEMLAB_NVCC_FLAGS") {
        cmd.args(extra.split_whitespace());
    }
    cmd.arg(&unit_path);
    // The command as run (without its environment), for whoever wonders which compiler and
    // flags built the kernels.
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let _ = fs::write(out.join("nvcc-command.txt"), line.join(" ") + "\n");
    let status = cmd.status().unwrap_or_else(|e| {
        fail(&format!(
            "cannot run {}: {e}; {INSTALL_HINT}",
            nvcc.display()
        ))
    });
    if !status.success() {
        fail(&format!(
            "{} failed to compile kernels/*.cu ({status}); see its messages above",
            nvcc.display()
        ));
    }
    println!(
        "cargo:rustc-env=CUMEMLAB_SASS_ARCHES={}",
        SASS_ARCHES
            .iter()
            .filter(|a| !skipped.contains(a))
            .copied()
            .collect::<Vec<_>>()
            .join(",")
    );
}

/// nvcc as cc configures it for this build (see the module doc), as a command ready for the
/// fatbin arguments, and the path of the nvcc it runs.
fn configured_nvcc() -> (Command, PathBuf) {
    let mut build = cc::Build::new();
    build
        .cuda(true)
        // The driver API loads the fatbin; nothing links the CUDA runtime.
        .cudart("none")
        // A flag of nvcc itself (its front end and the host compiler): cc's `std` would reach
        // only the host compiler.
        .flag("-std=c++17")
        // Kernels are measured, so they are optimised in every profile: cc would pass `-G`
        // (device debug, no optimisation) in a debug build.
        .opt_level(3)
        .debug(false)
        .flag("-lineinfo");
    let tool = build.try_get_compiler().unwrap_or_else(|e| {
        fail(&format!(
            "the cc crate could not configure the CUDA compiler: {e}; {INSTALL_HINT}"
        ))
    });
    (tool.to_command(), tool.path().to_path_buf())
}

/// The variables cc reads to pick nvcc, most specific first (as `cc` looks them up).
fn nvcc_variables() -> [String; 4] {
    let target = env::var("TARGET").unwrap_or_default();
    let host = env::var("HOST").unwrap_or_default();
    let kind = if target == host { "HOST" } else { "TARGET" };
    [
        format!("NVCC_{target}"),
        format!("NVCC_{}", target.replace(['-', '.'], "_")),
        format!("{kind}_NVCC"),
        "NVCC".to_string(),
    ]
}

/// With none of [`nvcc_variables`] set, cc would run a bare `nvcc` from `PATH`; point `NVCC` at
/// the nvcc of the toolkit build.rs found instead, so compiler and `cuda.h` come from one toolkit.
fn default_nvcc(toolkit: &Path) {
    if nvcc_variables()
        .iter()
        .any(|v| env::var_os(v).is_some_and(|x| !x.is_empty()))
    {
        return;
    }
    // SAFETY: build scripts run `main` on one thread and this runs before anything that could
    // start another one (bindgen and cc run later), so nothing reads the environment concurrently.
    unsafe { env::set_var("NVCC", toolkit.join("bin/nvcc")) };
}

/// `nvcc --list-gpu-code` gives `sm_XX` lines; an empty answer means "unknown, try them all".
fn supported_arches(nvcc: &Path) -> Vec<String> {
    let Ok(out) = Command::new(nvcc).arg("--list-gpu-code").output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("sm_").map(String::from))
        .collect()
}
