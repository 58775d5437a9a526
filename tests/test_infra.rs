//! The test infrastructure itself, no GPU needed: the GPU lock of `tests/common` lets one holder
//! in at a time, among threads of one process and across processes, and a skip lands in the run's
//! record in the form `scripts/test-skips.sh` counts.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Runs one `#[ignore]`d child test of this binary with the given environment; its stdout.
fn child(test: &str, env: &[(&str, &str)]) -> String {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn the_gpu_lock_admits_one_thread_at_a_time() {
    static INSIDE: AtomicUsize = AtomicUsize::new(0);
    static MOST: AtomicUsize = AtomicUsize::new(0);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..3 {
                    let _g = common::gpu_lock();
                    let now = INSIDE.fetch_add(1, Ordering::SeqCst) + 1;
                    MOST.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    INSIDE.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        MOST.load(Ordering::SeqCst),
        1,
        "two threads held the lock at once"
    );
}

/// Run by the test below in a child process: can this process take the lock file now?
#[test]
#[ignore = "run in a child process by the_gpu_lock_holds_across_processes"]
fn child_tries_the_lock_file() {
    let path = std::env::temp_dir().join(common::LOCK_FILE);
    let f = std::fs::File::open(&path).unwrap();
    match f.try_lock() {
        Ok(()) => println!("CHILD-GOT-IT"),
        Err(std::fs::TryLockError::WouldBlock) => println!("CHILD-WOULD-BLOCK"),
        Err(e) => panic!("try_lock on {}: {e:?}", path.display()),
    }
}

#[test]
fn the_gpu_lock_holds_across_processes() {
    let held = common::gpu_lock();
    assert!(
        child("child_tries_the_lock_file", &[]).contains("CHILD-WOULD-BLOCK"),
        "another process took the lock this test holds"
    );
    drop(held);
    // Released: a child gets it, unless another process took it meanwhile; wait for that one.
    let mut got = false;
    for _ in 0..600 {
        if child("child_tries_the_lock_file", &[]).contains("CHILD-GOT-IT") {
            got = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        got,
        "the lock file stayed locked after the lock was dropped"
    );
}

/// Run by the test below in a child process: one skip, recorded where the parent says.
#[test]
#[ignore = "run in a child process by a_skip_is_recorded_and_counted"]
fn child_skips() {
    common::skip("child_skips: a reason\twith a tab");
    println!("CHILD-SKIPPED");
}

#[test]
fn a_skip_is_recorded_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("skips.log");
    let record_s = record.to_str().unwrap();
    let out = child("child_skips", &[(common::SKIP_LOG_ENV, record_s)]);
    assert!(out.contains("CHILD-SKIPPED"), "{out}");
    let text = std::fs::read_to_string(&record).unwrap();
    assert_eq!(
        text, "skip\ttest_infra::child_skips\ta reason with a tab\n",
        "one line, keyed by binary and test"
    );
    // A child that holds its parent's lock records nothing.
    child(
        "child_skips",
        &[
            (common::SKIP_LOG_ENV, record_s),
            (common::LOCK_HELD_ENV, "1"),
        ],
    );
    assert_eq!(std::fs::read_to_string(&record).unwrap(), text);
    // The counter reads it as one skipped test outside the GPU tests.
    std::fs::write(
        &record,
        format!("{text}gpu\tg::one\nskip\tg::one\tno CUDA device (none)\ngpu\tg::two\n"),
    )
    .unwrap();
    let script = common::repo().join("scripts/test-skips.sh");
    let o = Command::new("bash")
        .arg(&script)
        .arg(&record)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "GPU tests skipped: 1 of 2 (1 x no CUDA device (none))\n\
         Other tests skipped: 1 (1 x a reason with a tab)\n"
    );
}
