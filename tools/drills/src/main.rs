//! sck-drills: the failure table of sck-ingest, re-runnable by anyone. Each drill runs a fresh
//! bridge and decoder on the real local stack, publishes a steady stream of readings in both
//! formats, injects one fault mid-stream (a killed service, a restarted or stopped server, a
//! slow or full ClickHouse) and counts in ClickHouse that every reading is stored exactly once.
//! `make test` runs the short profile, `make drills` the full one (docs/drills.md).

mod diskfull;
mod drills;
mod pipeline;
mod proxy;
mod report;
mod stream;
mod verify;

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};

use crate::drills::{Drill, Scale};
use crate::report::{Row, Status};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Profile {
    /// Small streams and short outages (make test).
    Short,
    /// A few thousand messages, outages of a minute (make drills).
    Full,
}

/// Fault drills against the local stack (scripts/stack.sh up).
#[derive(Debug, Parser)]
#[command(name = "sck-drills", version)]
struct Args {
    /// How big and how long each drill is.
    #[arg(long, env = "DRILLS_PROFILE", value_enum, default_value_t = Profile::Short)]
    profile: Profile,
    /// Only these drills (comma-separated names; see --list). Empty: all of them.
    #[arg(long, env = "DRILLS_ONLY", value_delimiter = ',')]
    only: Vec<String>,
    /// Also write the table as Markdown to this file.
    #[arg(long, env = "DRILLS_MARKDOWN")]
    markdown: Option<PathBuf>,
    /// List the drills and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let scale = match args.profile {
        Profile::Short => Scale::SHORT,
        Profile::Full => Scale::FULL,
    };
    if args.list {
        for d in Drill::ALL {
            println!("{:<30} {}", d.name(), d.fault(&scale));
        }
        return ExitCode::SUCCESS;
    }
    let mut chosen = Vec::new();
    for name in args.only.iter().filter(|n| !n.is_empty()) {
        match Drill::by_name(name) {
            Some(d) => chosen.push(d),
            None => {
                eprintln!("sck-drills: no drill named {name:?} (see --list)");
                return ExitCode::from(2);
            }
        }
    }
    if chosen.is_empty() {
        chosen = Drill::ALL.to_vec();
    }
    let mut rows = Vec::new();
    for drill in chosen {
        let t = Instant::now();
        eprintln!("== {} ({})", drill.name(), drill.fault(&scale));
        let row = run_one(drill, scale);
        eprintln!(
            "== {}: {:?} in {:.0} s",
            drill.name(),
            row.status,
            t.elapsed().as_secs_f64()
        );
        rows.push(row);
    }
    let table = report::text(&rows);
    println!("{table}");
    if let Some(path) = &args.markdown {
        if let Err(e) = std::fs::write(path, report::markdown(&rows)) {
            eprintln!("sck-drills: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if rows.iter().any(|r| matches!(r.status, Status::Failed(_))) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One drill on a runtime of its own; a panic in the harness fails the drill, not the run.
fn run_one(drill: Drill, scale: Scale) -> Row {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map(|rt| rt.block_on(drills::run(drill, scale)))
    }));
    match outcome {
        Ok(Ok(row)) => row,
        Ok(Err(e)) => failed(drill, scale, format!("cannot start a runtime: {e}")),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into());
            failed(drill, scale, why)
        }
    }
}

fn failed(drill: Drill, scale: Scale, why: String) -> Row {
    let mut row = Row::new(drill.name(), drill.fault(&scale), scale.messages);
    row.status = Status::Failed(why);
    row
}
