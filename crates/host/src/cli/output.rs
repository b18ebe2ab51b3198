//! Output helpers: JSON, write errors, the stations' summary table.

use std::io::Write;

use serde::Serialize;

use super::CliError;
use crate::engine::{DeviceReport, DeviceResult};
use crate::ops::Tally;

/// A failed write to stdout.
pub fn io_err(e: std::io::Error) -> CliError {
    CliError::Invalid(format!("writing output: {e}"))
}

/// `value` as pretty JSON and a newline.
pub fn print_json<T: Serialize>(value: &T, out: &mut dyn Write) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out).map_err(io_err)
}

/// Prints the summary table (or JSON) and returns an error when any device failed.
pub fn summarize(
    reports: &[DeviceReport],
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let io = CliError::Output;
    if json {
        let rows: Vec<_> = reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "station": r.station,
                    "port": r.port,
                    "chip_serial": r.chip_serial.map(hex::encode_upper),
                    "cn": r.cn,
                    "cert_serial": r.cert_serial,
                    "seconds": r.elapsed.as_secs_f64(),
                    "result": result_word(&r.result),
                    "error": match &r.result { DeviceResult::Failed(m) => Some(m.clone()), _ => None },
                    "bytes_out": r.link.bytes_out,
                    "bytes_in": r.link.bytes_in,
                    "retries": r.link.retries,
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        )
        .map_err(io)?;
    } else {
        writeln!(
            out,
            "{:<9} {:<18} {:<20} {:<20} {:>7}  result",
            "station", "chip serial", "CN", "certificate serial", "time"
        )
        .map_err(io)?;
        for r in reports {
            writeln!(
                out,
                "{:<9} {:<18} {:<20} {:<20} {:>6.2}s  {}",
                r.station,
                r.chip_serial
                    .map(hex::encode_upper)
                    .unwrap_or_else(|| "-".into()),
                r.cn.as_deref().unwrap_or("-"),
                r.cert_serial.as_deref().unwrap_or("-"),
                r.elapsed.as_secs_f64(),
                match &r.result {
                    DeviceResult::Failed(m) => format!("FAILED: {m}"),
                    other => result_word(other).to_string(),
                }
            )
            .map_err(io)?;
        }
    }
    let failed = Tally::of(reports).failed;
    if failed > 0 {
        return Err(CliError::DevicesFailed {
            failed,
            total: reports.len(),
        });
    }
    Ok(())
}

fn result_word(r: &DeviceResult) -> &'static str {
    match r {
        DeviceResult::Provisioned => "provisioned",
        DeviceResult::AlreadyProvisioned => "verified",
        DeviceResult::Failed(_) => "failed",
    }
}
