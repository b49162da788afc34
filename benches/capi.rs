//! The C API's cost over the Rust API: GenerateDataKey and Encrypt (4 KiB), one call at a time
//! and in batches of 64, in embedded mode, through the C library (`ffi/bench/bench.c`, built
//! here with the system C compiler against `libkmscks.so`) and through the Rust API
//! ([`Kms::generate_data_key`] and friends, each request built once and reused: the best the
//! Rust API can do) — in the same run, in alternating rounds, so that the machine's drift
//! falls on both. Prints one line per case: the rates over all rounds, the median of the
//! rounds' ratios C ÷ Rust (target ≥ 0.9), and their range.
//!
//! `cargo bench --bench capi` (a C compiler is needed; without one the bench says so and
//! exits). Both sides are one thread on a fresh in-memory instance with one default-store key,
//! each round in a fresh process: the C program's, and this bench's own with
//! `--rust gdk|encrypt BATCH MILLISECONDS`, which runs one Rust round and prints
//! `<items> <nanoseconds>` as `ffi/bench/bench.c` does. (Run in this bench's long-lived
//! process, the Rust rounds of Encrypt in batches slowed to a third, some invocations, for a
//! reason not found; the C rounds, each a new process, never did.) `scripts/capi-instructions`
//! runs both programs under callgrind and counts the instructions per item of the calls
//! themselves (the Rust calls are the `rust_*` functions below, never inlined, so that
//! callgrind can name them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kmscks::api::kms::{CreateKeyRequest, EncryptRequest, GenerateDataKeyRequest};
use kmscks::secret::SecretBytes;
use kmscks::Kms;

/// Alternating rounds per case, the length of each, and the untimed warm-up before each (as in
/// bench.c's `WARMUP_NS`).
const ROUNDS: usize = 9;
const ROUND: Duration = Duration::from_millis(400);
const WARMUP: Duration = Duration::from_millis(100);
/// Calls between two looks at the clock (as in bench.c).
const STRIDE: usize = 64;
const PLAINTEXT_LEN: usize = 4096;
const BATCH: usize = 64;

#[derive(Clone, Copy)]
enum Op {
    DataKey,
    Encrypt,
}

impl Op {
    fn c_name(self) -> &'static str {
        match self {
            Op::DataKey => "gdk",
            Op::Encrypt => "encrypt",
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, op, batch, ms] = args.as_slice() {
        if flag == "--rust" {
            let op = match op.as_str() {
                "gdk" => Op::DataKey,
                "encrypt" => Op::Encrypt,
                _ => panic!("--rust gdk|encrypt BATCH MILLISECONDS"),
            };
            let batch = batch.parse().expect("BATCH is a number");
            let ms = ms.parse().expect("MILLISECONDS is a number");
            let (items, time) = rust_round(op, batch, Duration::from_millis(ms));
            println!("{items} {}", time.as_nanos());
            return;
        }
    }
    let Some(bench) = build_c_bench() else {
        return;
    };
    let this = std::env::current_exe().expect("the bench knows its path");
    println!(
        "{:<32} {:>11} {:>11} {:>7} {:>13}",
        "case", "Rust /s", "C /s", "C÷Rust", "round ratios"
    );
    for (name, op, batch) in [
        ("GenerateDataKey", Op::DataKey, 1),
        ("GenerateDataKey, batches of 64", Op::DataKey, BATCH),
        ("Encrypt 4 KiB", Op::Encrypt, 1),
        ("Encrypt 4 KiB, batches of 64", Op::Encrypt, BATCH),
    ] {
        let (mut rust, mut c) = (Rate::default(), Rate::default());
        let mut ratios = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let r = round_in_process(&this, &["--rust"], op, batch);
            let k = round_in_process(&bench, &[], op, batch);
            ratios.push(rate(k) / rate(r));
            rust.add(r);
            c.add(k);
        }
        // The median of the rounds' ratios, each C round against the Rust round just before
        // it, is what the table reports: on a shared VM a neighbour's burst lands on one round,
        // not on one side.
        ratios.sort_by(f64::total_cmp);
        println!(
            "{name:<32} {:>11.0} {:>11.0} {:>7.2} {:>6.2}–{:.2}",
            rust.per_sec(),
            c.per_sec(),
            ratios[ROUNDS / 2],
            ratios[0],
            ratios[ROUNDS - 1]
        );
    }
}

/// Items per second of one round.
fn rate((items, time): (u64, Duration)) -> f64 {
    items as f64 / time.as_secs_f64()
}

/// Items and the time they took, summed over rounds.
#[derive(Default)]
struct Rate {
    items: u64,
    time: Duration,
}

impl Rate {
    fn add(&mut self, (items, time): (u64, Duration)) {
        self.items += items;
        self.time += time;
    }

    fn per_sec(&self) -> f64 {
        self.items as f64 / self.time.as_secs_f64()
    }
}

/// One GenerateDataKey through the Rust API, its answer dropped.
#[inline(never)]
fn rust_generate_data_key(kms: &Kms, request: &GenerateDataKeyRequest) {
    drop(std::hint::black_box(
        kms.generate_data_key(request).expect("data key"),
    ));
}

/// One Encrypt through the Rust API, its answer dropped.
#[inline(never)]
fn rust_encrypt(kms: &Kms, request: &EncryptRequest) {
    drop(std::hint::black_box(kms.encrypt(request).expect("encrypt")));
}

/// One batch of GenerateDataKey through the Rust API, its answers dropped.
#[inline(never)]
fn rust_generate_data_key_batch(kms: &Kms, items: &[GenerateDataKeyRequest]) {
    for r in kms.generate_data_key_batch(items, true) {
        drop(std::hint::black_box(r.expect("a batch item")));
    }
}

/// One batch of Encrypt through the Rust API, its answers dropped.
#[inline(never)]
fn rust_encrypt_batch(kms: &Kms, items: &[EncryptRequest]) {
    for r in kms.encrypt_batch(items) {
        drop(std::hint::black_box(r.expect("a batch item")));
    }
}

/// One round of `length` through the Rust API on a fresh instance (setup and warm-up not
/// timed).
fn rust_round(op: Op, batch: usize, length: Duration) -> (u64, Duration) {
    let kms = Kms::in_memory();
    let key_id = kms
        .create_key(&CreateKeyRequest::default())
        .expect("an in-memory instance creates a key")
        .key_metadata
        .key_id;
    let gdk = GenerateDataKeyRequest {
        key_id: key_id.clone(),
        number_of_bytes: Some(32),
        ..Default::default()
    };
    let encrypt = || EncryptRequest {
        key_id: key_id.clone(),
        plaintext: SecretBytes::new(vec![0x5a; PLAINTEXT_LEN]),
        ..Default::default()
    };
    let gdk_items: Vec<_> = (0..batch)
        .map(|_| GenerateDataKeyRequest {
            key_id: key_id.clone(),
            number_of_bytes: Some(32),
            ..Default::default()
        })
        .collect();
    let enc_one = encrypt();
    let enc_items: Vec<_> = (0..batch).map(|_| encrypt()).collect();
    let once = || -> u64 {
        match (op, batch) {
            (Op::DataKey, 1) => rust_generate_data_key(&kms, &gdk),
            (Op::Encrypt, 1) => rust_encrypt(&kms, &enc_one),
            (Op::DataKey, _) => rust_generate_data_key_batch(&kms, &gdk_items),
            (Op::Encrypt, _) => rust_encrypt_batch(&kms, &enc_items),
        }
        batch as u64
    };
    let warm = Instant::now();
    while warm.elapsed() < WARMUP {
        once();
    }
    let (mut items, start) = (0, Instant::now());
    loop {
        for _ in 0..STRIDE {
            items += once();
        }
        let elapsed = start.elapsed();
        if elapsed >= length {
            return (items, elapsed);
        }
    }
}

/// One round in a fresh process, as both sides run theirs (so that neither inherits the other
/// rounds' heap, threads or caches): `program` (the C program, or this bench with `--rust`)
/// given `args` and then the operation, batch size and round length, printing
/// `<items> <nanoseconds>`.
fn round_in_process(program: &Path, args: &[&str], op: Op, batch: usize) -> (u64, Duration) {
    // cargo puts target/<profile> on LD_LIBRARY_PATH, where a stale copy of the library may
    // be: the C program must load the one it was linked against (its RPATH).
    let out = Command::new(program)
        .env_remove("LD_LIBRARY_PATH")
        .args(args)
        .args([
            op.c_name(),
            &batch.to_string(),
            &ROUND.as_millis().to_string(),
        ])
        .output()
        .expect("a round's program runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "a round of {} failed: {}{}",
        program.display(),
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>());
    match (fields.next(), fields.next()) {
        (Some(Ok(items)), Some(Ok(ns))) => (items, Duration::from_nanos(ns)),
        _ => panic!("a round printed {text:?}, not '<items> <nanoseconds>'"),
    }
}

/// Compiles `ffi/bench/bench.c` against the `libkmscks.so` beside this bench's binary; None
/// (with the reason printed) when there is no C compiler.
fn build_c_bench() -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("the bench knows its path");
    // target/<profile>/deps/capi-…: cargo builds the library this bench links, with all its
    // crate types, into the same directory (`target/<profile>/libkmscks.so` is copied there
    // only by `cargo build`, and may be stale).
    let lib_dir = exe
        .parent()
        .expect("the bench runs from target/<profile>/deps");
    assert!(
        lib_dir.join("libkmscks.so").exists(),
        "no libkmscks.so in {} (cargo builds it with the library)",
        lib_dir.display()
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = lib_dir.join("kmscks-capi-bench");
    let status = Command::new("cc")
        .args(["-O2", "-std=c11", "-D_POSIX_C_SOURCE=199309L"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("ffi/bench/bench.c"))
        .arg("-L")
        .arg(lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-lkmscks", "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        Ok(s) => panic!("cc failed to build ffi/bench/bench.c ({s})"),
        Err(e) => {
            println!("capi bench skipped: no C compiler (`cc`: {e})");
            None
        }
    }
}
