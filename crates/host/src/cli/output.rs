//! Output helpers: JSON, write errors, the stations' summary table.

use std::io::Write;

use serde::Serialize;

use super::CliError;
use crate::engine::{DeviceReport, DeviceResult};
use crate::ops::Tally;

/// A failed write to stdout.
pub fn io_err(e: std::io::Error) -> CliError {
    CliError::Output(e)
}

/// `value` as pretty JSON and a newline.
pub fn print_json<T: Serialize>(value: &T, out: &mut dyn Write) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out).map_err(io_err)
}

/// Prints the summary table (or JSON) and its closing count line, and returns an error when
/// any device failed or was interrupted.
pub fn summarize(
    reports: &[DeviceReport],
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let io = CliError::Output;
    let tally = Tally::of(reports);
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
                    "issued": r.issued,
                    // Whole milliseconds: an integer reads the same in every JSON consumer.
                    "milliseconds": millis(r.elapsed),
                    "result": result_word(&r.result),
                    "error": match &r.result { DeviceResult::Failed(m) => Some(m.clone()), _ => None },
                    "stopped_before": match &r.result { DeviceResult::Interrupted { step } => Some(step.name()), _ => None },
                    "bytes_out": r.link.bytes_out,
                    "bytes_in": r.link.bytes_in,
                    "retries": r.link.retries,
                })
            })
            .collect();
        print_json(
            &serde_json::json!({ "devices": rows, "counts": tally }),
            out,
        )?;
    } else {
        let width = reports
            .iter()
            .map(|r| r.station.chars().count())
            .max()
            .unwrap_or(0)
            .max("station".len());
        writeln!(
            out,
            "{:<width$} {:<18} {:<20} {:<20} {:>7}  result",
            "station", "chip serial", "CN", "certificate serial", "time"
        )
        .map_err(io)?;
        for r in reports {
            writeln!(
                out,
                "{:<width$} {:<18} {:<20} {:<20} {:>6.2}s  {}",
                r.station,
                r.chip_serial
                    .map(hex::encode_upper)
                    .unwrap_or_else(|| "-".into()),
                r.cn.as_deref().unwrap_or("-"),
                r.cert_serial.as_deref().unwrap_or("-"),
                r.elapsed.as_secs_f64(),
                match &r.result {
                    DeviceResult::Failed(m) => format!("FAILED: {m}"),
                    DeviceResult::Interrupted { step } =>
                        format!("interrupted before {}", step.name()),
                    other => result_word(other).to_string(),
                }
            )
            .map_err(io)?;
        }
        writeln!(out, "{}", count_line(&tally)).map_err(io)?;
    }
    if tally.interrupted > 0 {
        return Err(CliError::Interrupted {
            stopped: tally.interrupted,
            total: reports.len(),
        });
    }
    if tally.failed > 0 {
        return Err(CliError::DevicesFailed {
            failed: tally.failed,
            total: reports.len(),
            json,
            // Only a device the station reached has progress a rerun can resume.
            resumable: reports
                .iter()
                .any(|r| matches!(r.result, DeviceResult::Failed(_)) && r.chip_serial.is_some()),
        });
    }
    Ok(())
}

/// The line closing a run's table: what happened to how many devices.
pub fn count_line(t: &Tally) -> String {
    let mut line = format!(
        "{} devices: {} provisioned, {} verified, {} failed",
        t.total(),
        t.provisioned,
        t.verified,
        t.failed
    );
    if t.interrupted > 0 {
        line.push_str(&format!(", {} interrupted", t.interrupted));
    }
    line.push_str(&format!("; {} certificates issued", t.issued));
    line
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn result_word(r: &DeviceResult) -> &'static str {
    match r {
        DeviceResult::Provisioned => "provisioned",
        DeviceResult::AlreadyProvisioned => "verified",
        DeviceResult::Failed(_) => "failed",
        DeviceResult::Interrupted { .. } => "interrupted",
    }
}
