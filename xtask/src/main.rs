//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! `cargo xtask ci` is exactly what `.ci/run` runs after installing targets and tools.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The shared crates that must stay `no_std` and build for the ESP32-C3's instruction set.
const NO_STD_CRATES: &[(&str, &str)] = &[
    ("certdef", "keystamp-certdef"),
    ("wire", "keystamp-wire"),
    ("atecc", "keystamp-atecc"),
    ("agent", "keystamp-agent"),
];

/// The ESP32-C3 target; the C6 uses `riscv32imac-unknown-none-elf`.
const DEVICE_TARGET: &str = "riscv32imc-unknown-none-elf";

/// Windows factory PCs: the host tool must build for them (MinGW; rusqlite's bundled SQLite is
/// compiled with mingw-w64's gcc).
const WINDOWS_TARGET: &str = "x86_64-pc-windows-gnu";

/// The C compiler the Windows build needs (Debian's `mingw-w64`).
const WINDOWS_CC: &str = "x86_64-w64-mingw32-gcc";

/// Wine's 64-bit loader: Debian's `wine64` package installs it off PATH.
const WINE_CANDIDATES: &[&str] = &["/usr/lib/wine/wine64", "wine64", "wine"];

/// Same flags for the Windows build and test, so the test run reuses the build. Only the Windows
/// units: the host's build scripts and the Linux build keep their flags (and their cache).
const WINDOWS_RUSTFLAGS: (&str, &str) = (
    "CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS",
    "-D warnings",
);

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                         everything CI checks: fmt, clippy -D warnings, tests (workspace and
                             each no_std crate alone), no_std cross builds, the host and its tests
                             built for Windows (and run under wine when installed), firmware, fuzz
                             smoke run
  fuzz <target> [--seconds N]
                             run one cargo-fuzz target (stable, no sanitizer, unless nightly exists)
  fuzz --all [--seconds N]   run every fuzz target for N seconds each (default 10)
  bench [NAME...] [--profile custom|trustflex|trustandgo]
                             run the benches (all, or the named bench targets); --profile picks
                             the provision bench's parts and flow (default custom)
  firmware [--chip esp32c3|esp32c6]
                             build the release firmware, write a flashable image if espflash exists,
                             print flash and static RAM use
  size                       flash size of the device-side certificate rebuild path
  soak [--runs N] [--seed S] N fault-injected provisionings of simulated devices (default 50),
                             rerun on failure; prints the outcomes and the anomalies, fails on
                             any anomaly (crates/soak)
";

/// Runs of the soak in `cargo xtask ci` (about a second each).
const CI_SOAK_RUNS: &str = "50";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match cmd.as_str() {
        "ci" => ci(),
        "fuzz" => fuzz(rest),
        "bench" => bench(rest),
        "firmware" => firmware(rest),
        "size" => size(),
        "soak" => soak(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    // xtask/ sits directly under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    run_env(dir, program, args, &[])
}

fn run_env(dir: &Path, program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let shown = format!("{program} {}", args.join(" "));
    eprintln!("\n==> [{}] {shown}", dir.display());
    let started = Instant::now();
    let mut c = Command::new(program);
    c.args(args).current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    let status = c
        .status()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    eprintln!(
        "<== {shown}: {status} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

fn existing_no_std_crates() -> Vec<&'static str> {
    NO_STD_CRATES
        .iter()
        .filter(|(dir, _)| root().join("crates").join(dir).join("Cargo.toml").exists())
        .map(|(_, pkg)| *pkg)
        .collect()
}

fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `cargo xtask soak`: the soak binary with the given arguments (debug build: the tests' build
/// is reused).
fn soak(args: &[String]) -> Result<(), String> {
    let mut cargo = vec!["run", "-q", "-p", "keystamp-soak", "--"];
    cargo.extend(args.iter().map(String::as_str));
    run(&root(), "cargo", &cargo)
}

fn ci() -> Result<(), String> {
    let root = root();
    let started = Instant::now();
    run(&root, "cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        &root,
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The README's test command.
    run(&root, "cargo", &["test", "--workspace"])?;
    soak(&["--runs".into(), CI_SOAK_RUNS.into()])?;
    windows_build(&root)?;
    // Each no_std crate alone: a workspace build unifies features and can hide a missing `std`.
    for pkg in existing_no_std_crates() {
        run(&root, "cargo", &["test", "-p", pkg])?;
        run(
            &root,
            "cargo",
            &["build", "-p", pkg, "--release", "--target", DEVICE_TARGET],
        )?;
    }
    if root.join("crates/firmware/Cargo.toml").exists() {
        firmware(&["--chip".into(), "esp32c3".into()])?;
        firmware(&["--chip".into(), "esp32c6".into()])?;
    }
    if fuzz_targets()?.is_empty() {
        eprintln!("\nfuzz: no targets yet, smoke run skipped");
    } else {
        fuzz(&["--all".into(), "--seconds".into(), "5".into()])?;
    }
    eprintln!(
        "\nci: all checks passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The host (library, binary, tests) built for Windows with warnings as errors, then its tests
/// run under wine when wine is installed (`.ci/run` installs it; without it they are only built,
/// and this says so).
fn windows_build(root: &Path) -> Result<(), String> {
    if !have(WINDOWS_CC, "--version") {
        return Err(format!(
            "the Windows build needs {WINDOWS_CC}: `apt-get install mingw-w64` and \
             `rustup target add {WINDOWS_TARGET}` (.ci/run does both)"
        ));
    }
    run_env(
        root,
        "cargo",
        &[
            "build",
            "--target",
            WINDOWS_TARGET,
            "-p",
            "keystamp",
            "--all-targets",
        ],
        &[WINDOWS_RUSTFLAGS],
    )?;
    let Some(wine) = WINE_CANDIDATES
        .iter()
        .copied()
        .find(|w| have(w, "--version"))
    else {
        eprintln!("\nwindows: wine not installed, the host's Windows tests were built, not run");
        return Ok(());
    };
    windows_tests(root, wine)
}

/// Runs the host's tests (unit, CLI, end to end over the in-process link) as Windows programs
/// under `wine`, in a Wine prefix of their own under `target/`.
fn windows_tests(root: &Path, wine: &str) -> Result<(), String> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let prefix = target_dir.join("wine-prefix");
    let prefix_str = prefix.to_string_lossy().into_owned();
    let wine_env = [("WINEPREFIX", prefix_str.as_str()), ("WINEDEBUG", "-all")];
    // Creates the prefix (the first time, about 15 s).
    run_env(root, wine, &["wineboot", "--init"], &wine_env)?;
    // Debian 12's Wine lacks bcryptprimitives.dll, which Rust's std needs on Windows.
    let dll = prefix.join("drive_c/windows/system32/bcryptprimitives.dll");
    let dll_str = dll.to_string_lossy().into_owned();
    run(
        root,
        WINDOWS_CC,
        &[
            "-O2",
            "-shared",
            "-o",
            &dll_str,
            ".ci/wine/bcryptprimitives.c",
            ".ci/wine/bcryptprimitives.def",
            "-ladvapi32",
        ],
    )?;
    let wine_tests = || {
        run_env(
            root,
            "cargo",
            // The unit tests and the certdef CLI tests run under wine. The integration tests that
            // drive simulated devices, servers or OpenSSL (attack, e2e, tls_identity, ...) are
            // built above but not run: several still assume Unix ptys or Linux tools
            // (docs/architecture.md). One test thread: wine's process creation fails now and then
            // ("Internal error", a reset wineserver connection) when tests spawn in parallel.
            &[
                "test",
                "--target",
                WINDOWS_TARGET,
                "-p",
                "keystamp",
                "--lib",
                "--test",
                "certdef_cli",
                "--",
                "--test-threads=1",
            ],
            &[
                WINDOWS_RUSTFLAGS,
                ("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER", wine),
                wine_env[0],
                wine_env[1],
            ],
        )
    };
    // Wine itself is the flaky part here, not the code under test: a failed run is repeated
    // once and only a second failure fails CI (both runs are printed).
    let result = wine_tests().or_else(|first| {
        eprintln!("\nwindows: {first}; running the wine tests once more");
        wine_tests()
    });
    // Stop the prefix's wineserver and services rather than leave them running after CI.
    let server = match wine.strip_suffix("wine64") {
        Some(dir) if dir.ends_with('/') => format!("{dir}wineserver64"),
        _ => "wineserver".to_string(),
    };
    let _ = Command::new(&server)
        .arg("-k")
        .env("WINEPREFIX", &prefix)
        .status();
    result
}

/// Names of the `[[bin]]` targets in fuzz/Cargo.toml.
fn fuzz_targets() -> Result<Vec<String>, String> {
    let manifest = root().join("fuzz/Cargo.toml");
    let Ok(text) = std::fs::read_to_string(&manifest) else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(v) = line.strip_prefix("name") {
            let v = v
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            names.push(v.to_string());
        }
    }
    Ok(names)
}

fn fuzz(args: &[String]) -> Result<(), String> {
    let mut seconds = 10u32;
    let mut target = None;
    let mut all = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds needs a whole number")?;
            }
            "--all" => all = true,
            t if !t.starts_with('-') => target = Some(t.to_string()),
            other => return Err(format!("fuzz: unknown option `{other}`")),
        }
    }
    let known = fuzz_targets()?;
    let targets: Vec<String> = if all {
        known.clone()
    } else {
        let t = target.ok_or_else(|| {
            format!(
                "fuzz: name a target or --all; targets: {}",
                known.join(", ")
            )
        })?;
        if !known.contains(&t) {
            return Err(format!(
                "fuzz: unknown target `{t}`; targets: {}",
                known.join(", ")
            ));
        }
        vec![t]
    };
    if !have_cargo_fuzz() {
        return Err("cargo-fuzz is not installed: run `cargo install cargo-fuzz --locked`".into());
    }
    // Nightly gives AddressSanitizer; stable with `-s none` still finds panics and is always there.
    let nightly = nightly_present();
    let fuzz_dir = root().join("fuzz");
    let max_time = format!("-max_total_time={seconds}");
    for t in &targets {
        let corpus = fuzz_dir.join("corpus").join(t);
        std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let corpus = corpus.to_string_lossy().to_string();
        if nightly {
            run(
                &fuzz_dir,
                "cargo",
                &["+nightly", "fuzz", "run", t, &corpus, "--", &max_time],
            )?;
        } else {
            run(
                &fuzz_dir,
                "cargo",
                &["fuzz", "run", "-s", "none", t, &corpus, "--", &max_time],
            )?;
        }
    }
    Ok(())
}

fn have_cargo_fuzz() -> bool {
    Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn nightly_present() -> bool {
    if std::env::var_os("KEYSTAMP_FUZZ_STABLE").is_some() {
        return false;
    }
    Command::new("rustc")
        .args(["+nightly", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn bench(args: &[String]) -> Result<(), String> {
    let root = root();
    if !root.join("benches/Cargo.toml").exists() {
        return Err("no benches yet (benches/ has no crate)".into());
    }
    let mut cargo_args = vec!["bench", "-p", "keystamp-benches"];
    // `--profile P` goes to the bench binaries (the provision bench's part profile).
    let mut passed = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--profile" {
            let p = it
                .next()
                .ok_or("--profile needs custom, trustflex or trustandgo")?;
            passed.extend(["--profile", p.as_str()]);
        } else {
            cargo_args.push("--bench");
            cargo_args.push(a);
        }
    }
    if !passed.is_empty() {
        cargo_args.push("--");
        cargo_args.extend(passed);
    }
    run(&root, "cargo", &cargo_args)
}

fn firmware(args: &[String]) -> Result<(), String> {
    let dir = root().join("crates/firmware");
    if !dir.join("Cargo.toml").exists() {
        return Err("crates/firmware does not exist yet".into());
    }
    let chip = match args {
        [] => "esp32c3",
        [flag, chip] if flag == "--chip" => chip.as_str(),
        _ => return Err("usage: cargo xtask firmware [--chip esp32c3|esp32c6]".into()),
    };
    let target = match chip {
        "esp32c3" => "riscv32imc-unknown-none-elf",
        "esp32c6" => "riscv32imac-unknown-none-elf",
        other => return Err(format!("unknown chip `{other}` (esp32c3 or esp32c6)")),
    };
    // The shipped image: the chip feature alone. `println` (panic messages via esp-backtrace) is
    // a debugging build and about 15 KB larger (docs/firmware.md).
    // cargo reads .cargo/config.toml from the current directory, so build from inside the crate.
    build_firmware(&dir, chip, target, &[])?;
    let elf = dir.join(format!("target/{target}/release/keystamp-firmware"));
    report_elf_size(&elf)?;
    if !have("espflash", "--version") {
        eprintln!("espflash not installed: image not written (`cargo install espflash --locked`)");
        return Ok(());
    }
    let elf_s = elf.to_string_lossy().to_string();
    let image = dir.join(format!(
        "target/{target}/release/keystamp-firmware-{chip}.bin"
    ));
    let image_s = image.to_string_lossy().to_string();
    run(
        &dir,
        "espflash",
        &["save-image", "--chip", chip, &elf_s, &image_s],
    )?;
    let len = std::fs::metadata(&image).map_err(|e| e.to_string())?.len();
    println!("firmware image ({chip}): {} ({len} bytes)", image.display());
    // The full flash image (bootloader, partitions.csv's table, app) for `espflash write-bin 0x0`.
    let merged = dir.join(format!(
        "target/{target}/release/keystamp-firmware-{chip}-merged.bin"
    ));
    let merged_s = merged.to_string_lossy().to_string();
    run(
        &dir,
        "espflash",
        &[
            "save-image",
            "--chip",
            chip,
            "--merge",
            "--skip-padding",
            "--partition-table",
            "partitions.csv",
            &elf_s,
            &merged_s,
        ],
    )?;
    println!("full flash image ({chip}): {}", merged.display());
    let budget = FIRMWARE_IMAGE_BUDGET;
    if len > budget {
        return Err(format!(
            "firmware image is {len} bytes, over the {budget}-byte budget"
        ));
    }
    firmware_example(&dir, chip, target, "tls_identity")?;
    // The device-side known-answer checks on the C3's instruction set (docs/firmware.md
    // "Checks"); once, with the C3, and only where qemu is installed (Debian qemu-system-misc).
    if chip == "esp32c3" {
        if have("qemu-system-riscv32", "--version") {
            run(&dir.join("qemu-check"), "cargo", &["run", "--release"])?;
        } else {
            eprintln!("qemu-system-riscv32 not installed: device-ISA checks skipped");
        }
    }
    Ok(())
}

/// `cargo build --release` in crates/firmware with the chip feature alone, plus `extra`.
fn build_firmware(dir: &Path, chip: &str, target: &str, extra: &[&str]) -> Result<(), String> {
    let mut args = vec!["build", "--release"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "--no-default-features",
        "--features",
        chip,
        "--target",
        target,
    ]);
    run(dir, "cargo", &args)
}

/// Builds a firmware example (the shipped image's features, `--example NAME`) and reports its
/// flash use and app image size. Examples are not the shipped image: the budget does not apply
/// to them (docs/firmware.md "TLS with the chip-held identity"), their size is reported.
fn firmware_example(dir: &Path, chip: &str, target: &str, name: &str) -> Result<(), String> {
    build_firmware(dir, chip, target, &["--example", name])?;
    let elf = dir.join(format!("target/{target}/release/examples/{name}"));
    report_elf_size(&elf)?;
    let image = dir.join(format!(
        "target/{target}/release/examples/{name}-{chip}.bin"
    ));
    let (elf_s, image_s) = (
        elf.to_string_lossy().to_string(),
        image.to_string_lossy().to_string(),
    );
    run(
        dir,
        "espflash",
        &["save-image", "--chip", chip, &elf_s, &image_s],
    )?;
    let len = std::fs::metadata(&image).map_err(|e| e.to_string())?.len();
    println!(
        "example {name} image ({chip}): {} ({len} bytes)",
        image.display()
    );
    Ok(())
}

/// The flashable application image (`espflash save-image`, no --merge) must stay at or below
/// this (docs/firmware.md "Image size"): the project's 150 KB, for both chips. 64 KiB of every
/// image is the MMU-page gap before the code.
const FIRMWARE_IMAGE_BUDGET: u64 = 150_000;

/// Prints flash (.text + .rodata + initialised .data) and static RAM (.data + .bss) of an ELF.
fn report_elf_size(elf: &Path) -> Result<(), String> {
    let out = Command::new("llvm-size")
        .arg("-A")
        .arg(elf)
        .output()
        .map_err(|e| format!("llvm-size: {e}"))?;
    if !out.status.success() {
        return Err(format!("llvm-size failed on {}", elf.display()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut flash, mut ram) = (0u64, 0u64);
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(size)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(size) = size.parse::<u64>() else {
            continue;
        };
        // `.text_gap` (C6) is the empty MMU-page gap between .rodata and .text, not code.
        let code = name.starts_with(".text") && name != ".text_gap";
        if code || name.starts_with(".rodata") || name.starts_with(".rwtext") {
            flash += size;
        }
        if name == ".data" || name.starts_with(".data") {
            flash += size;
            ram += size;
        }
        if name.starts_with(".bss") {
            ram += size;
        }
    }
    println!(
        "{}: flash {flash} bytes (code + read-only data + .data image), static RAM {ram} bytes",
        elf.display()
    );
    Ok(())
}

fn size() -> Result<(), String> {
    let dir = root().join("crates/size-probe");
    if !dir.join("Cargo.toml").exists() {
        return Err("crates/size-probe does not exist yet".into());
    }
    run(&dir, "cargo", &["build", "--release"])?;
    let elf = dir.join(format!("target/{DEVICE_TARGET}/release/size-probe"));
    report_elf_size(&elf)?;
    report_panic_paths(&elf)
}

/// Lists the core panic entry points the probe links. The device path is meant to have none
/// (every bad input is a typed error); a bounds check the compiler cannot prove away shows up
/// here, and with linker relaxation each one also costs a panic location in .rodata.
fn report_panic_paths(elf: &Path) -> Result<(), String> {
    let out = Command::new("llvm-nm")
        .args(["-C", "--defined-only"])
        .arg(elf)
        .output()
        .map_err(|e| format!("llvm-nm: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let panics: Vec<&str> = text
        .lines()
        .filter_map(|l| l.splitn(3, ' ').nth(2))
        .filter(|name| name.starts_with("core::panicking") || name.contains("_fail"))
        .collect();
    if panics.is_empty() {
        println!("panic paths linked: none");
    } else {
        println!("panic paths linked: {}", panics.join(", "));
    }
    Ok(())
}
