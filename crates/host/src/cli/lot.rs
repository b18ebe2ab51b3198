//! `keystamp lot import|create|list|show|close`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::CliError;
use super::args::JsonFlag;
use super::output::{io_err, print_json};
use crate::ops;
use crate::project::Project;
use crate::registry::ChipSerial;
use crate::registry::lots::LotRecord;

/// `keystamp lot ...`.
#[derive(Debug, Subcommand)]
pub enum LotCommand {
    /// A lot of the chips in a serial list (one 18-hex-digit serial per line, or CSV with a
    /// serial column), e.g. a reel's list from Microchip.
    Import(ImportArgs),
    /// A lot of N chips whose serials are not known in advance (counts only).
    Create(CreateArgs),
    /// Every lot with its use.
    List(JsonFlag),
    /// One lot and the chips that took a place in it.
    Show(NameArgs),
    /// Close a lot: nothing more is issued to its chips.
    Close(NameArgs),
}

/// `keystamp lot import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The serial list (at most 16 MiB).
    pub file: PathBuf,
    /// Lot name (default: lot-N).
    #[arg(long)]
    pub name: Option<String>,
}

/// `keystamp lot create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// How many chips the lot holds.
    #[arg(long)]
    pub count: u64,
    /// Lot name (default: lot-N).
    #[arg(long)]
    pub name: Option<String>,
}

/// `keystamp lot show|close NAME`.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// The lot's name.
    pub name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs one `lot` command.
pub fn run(dir: &Path, cmd: LotCommand, out: &mut dyn Write) -> Result<(), CliError> {
    let project = Project::open(dir)?;
    match cmd {
        LotCommand::Import(a) => {
            let lot = ops::lot::import_lot(&project, &a.file, a.name.as_deref())?;
            print_lot(&lot, out)
        }
        LotCommand::Create(a) => {
            let lot = ops::lot::create_lot(&project, a.count, a.name.as_deref())?;
            print_lot(&lot, out)
        }
        LotCommand::List(f) => {
            let lots = ops::open_registry(&project)?.lots()?;
            if f.json {
                return print_json(&lots, out);
            }
            (|| {
                writeln!(
                    out,
                    "{:<20}  {:<7}  {:<6}  {:>19}  CREATED",
                    "LOT", "KIND", "STATUS", "USED/COUNT"
                )?;
                for l in &lots {
                    writeln!(
                        out,
                        "{:<20}  {:<7}  {:<6}  {:>19}  {}",
                        l.name,
                        l.kind,
                        status(l),
                        format!("{}/{}", l.used, l.count),
                        l.created_at
                    )?;
                }
                Ok(())
            })()
            .map_err(io_err)
        }
        LotCommand::Show(a) => {
            let registry = ops::open_registry(&project)?;
            let lot = registry.lot(&a.name)?;
            let devices = registry.lot_devices(&a.name)?;
            if a.json {
                #[derive(Serialize)]
                struct Detail<'a> {
                    #[serde(flatten)]
                    lot: &'a LotRecord,
                    devices: &'a [ChipSerial],
                }
                return print_json(
                    &Detail {
                        lot: &lot,
                        devices: &devices,
                    },
                    out,
                );
            }
            print_lot(&lot, out)?;
            (|| {
                for d in &devices {
                    writeln!(out, "device: {d}")?;
                }
                Ok(())
            })()
            .map_err(io_err)
        }
        LotCommand::Close(a) => {
            let lot = ops::open_registry_for_update(&project)?.close_lot(&a.name)?;
            if a.json {
                return print_json(&lot, out);
            }
            print_lot(&lot, out)
        }
    }
}

fn status(l: &LotRecord) -> &'static str {
    if l.open { "open" } else { "closed" }
}

fn print_lot(l: &LotRecord, out: &mut dyn Write) -> Result<(), CliError> {
    (|| {
        writeln!(out, "lot: {}", l.name)?;
        writeln!(out, "kind: {}", l.kind)?;
        writeln!(out, "status: {}", status(l))?;
        writeln!(out, "used: {}/{}", l.used, l.count)?;
        if let Some(source) = &l.source {
            writeln!(out, "source: {source}")?;
        }
        writeln!(out, "created_at: {}", l.created_at)?;
        if let Some(closed) = &l.closed_at {
            writeln!(out, "closed_at: {closed}")?;
        }
        Ok(())
    })()
    .map_err(io_err)
}
