//! The `simclr` command: parses the command line, runs the subcommand, and turns errors into a
//! one-line message and a non-zero exit code.

use clap::Parser;
use simclr::cli::{Cli, Command};
use simclr::commands;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn run(cli: Cli) -> anyhow::Result<bool> {
    if let Some(t) = cli.threads {
        if t == 0 {
            anyhow::bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global()?;
    }
    match &cli.command {
        Command::Pretrain(a) => {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            ctrlc::set_handler(move || {
                if flag.swap(true, Ordering::SeqCst) {
                    eprintln!("\nsecond interrupt: exiting without a checkpoint");
                    std::process::exit(130);
                }
                eprintln!("\ninterrupt: finishing the current step and saving a checkpoint (press Ctrl-C again to quit now)");
            })?;
            commands::pretrain_cmd(a, &stop)
        }
        Command::Probe(a) => commands::probe_cmd(a).map(|_| true),
        Command::Embed(a) => commands::embed_cmd(a).map(|_| true),
        Command::Baselines(a) => commands::baselines_cmd(a).map(|_| true),
        Command::Report(a) => commands::report_cmd(a).map(|_| true),
        Command::Augment(a) => commands::augment_cmd(a).map(|_| true),
        Command::Bench(a) => commands::bench_cmd(a).map(|_| true),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(130),
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
