//! `atecc-sim`: serve an emulated ATECC608 over Microchip's kit protocol on a pseudo-terminal.
//!
//! ```text
//! atecc-sim kit --state FILE [--create] [--seed N] [--revision 608a|608b]
//!               [--timing instant|realistic] [--trace FILE]
//! ```
//!
//! Prints `READY <slave path>` as the first stdout line, then serves until SIGTERM, SIGINT or
//! EOF on stdin, saving the chip's state to FILE after every change and on exit. With `--trace`,
//! the command log (one line per command group the chip received: opcode, param1, param2, data
//! length, status, all hex) is written to that file on exit, so a client's command sequence can
//! be compared with another's.

use keystamp_atecc_sim::kit::KitServer;
use keystamp_atecc_sim::{Revision, SimChip, SimOptions, StdDelay, Timing};
use serialport::SerialPort;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const USAGE: &str = "usage: atecc-sim kit --state FILE [--create] [--seed N] \
[--revision 608a|608b] [--timing instant|realistic] [--trace FILE]";

struct KitArgs {
    state: PathBuf,
    create: bool,
    options: SimOptions,
    trace: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<KitArgs, String> {
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("kit") {
        return Err(USAGE.to_string());
    }
    let mut state = None;
    let mut create = false;
    let mut trace = None;
    let mut options = SimOptions::default();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--state" => state = Some(PathBuf::from(value("--state")?)),
            "--create" => create = true,
            "--trace" => trace = Some(PathBuf::from(value("--trace")?)),
            "--seed" => {
                let v = value("--seed")?;
                options.seed = Some(v.parse().map_err(|_| format!("bad --seed {v:?}"))?);
            }
            "--revision" => {
                options.revision = match value("--revision")?.to_ascii_lowercase().as_str() {
                    "608a" | "a" => Revision::Atecc608A,
                    "608b" | "b" => Revision::Atecc608B,
                    other => return Err(format!("bad --revision {other:?}")),
                }
            }
            "--timing" => {
                options.timing = match value("--timing")?.as_str() {
                    "instant" => Timing::Instant,
                    "realistic" => Timing::Realistic,
                    other => return Err(format!("bad --timing {other:?}")),
                }
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let state = state.ok_or(format!("--state is required\n{USAGE}"))?;
    Ok(KitArgs {
        state,
        create,
        options,
        trace,
    })
}

fn run(args: KitArgs) -> Result<(), String> {
    let chip = if args.create {
        SimChip::open_or_create(&args.state, args.options)
    } else {
        SimChip::load_with(&args.state, args.options)
    }
    .map_err(|e| format!("{}: {e}", args.state.display()))?;
    let mut chip = chip;
    chip.set_autosave(Some(args.state.clone()));

    let (mut master, slave) = serialport::TTYPort::pair().map_err(|e| format!("openpty: {e}"))?;
    // The slave stays open for the server's lifetime so the master never sees a hang-up
    // between client sessions (kit-protocol.md, practical notes).
    let slave_path = slave.name().ok_or("pty has no slave name")?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| e.to_string())?;
    }
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 256];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            stop.store(true, Ordering::SeqCst);
        });
    }

    let mut out = std::io::stdout();
    writeln!(out, "READY {slave_path}")
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())?;

    let mut kit = KitServer::for_chip(chip, StdDelay);
    let served = kit.serve(&mut master, &stop);
    let chip = kit.into_inner();
    chip.save(&args.state)
        .map_err(|e| format!("saving {}: {e}", args.state.display()))?;
    if let Some(path) = &args.trace {
        let lines: String = chip
            .command_log()
            .iter()
            .map(|r| {
                format!(
                    "{:02X} {:02X} {:04X} {} {:02X}\n",
                    r.opcode, r.param1, r.param2, r.data_len, r.status
                )
            })
            .collect();
        std::fs::write(path, lines).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    drop(slave);
    served.map_err(|e| format!("serving: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("atecc-sim: {msg}");
            ExitCode::from(2)
        }
    }
}
