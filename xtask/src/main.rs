//! `cargo xtask`: the command-line front end of mralab. It parses arguments, calls the
//! harness, and prints; the work lives in the library crates.
//!
//! Exit codes: 0 success, 2 a harness fault (an error message on stderr), 141 standard output
//! was closed before everything was printed (`| head -1`; see `out.rs`), and the codes each
//! command documents (1 for a failure found).

mod bench;
mod bench_fleet;
mod bench_verify;
mod ciphers;
mod diagnose;
mod export;
mod expressway;
mod fleet;
mod fuzz;
mod images;
mod lab;
mod mutants;
mod out;
mod pki;
mod scenarios;
mod verify;

use crate::out::noteln;
use clap::{Parser, Subcommand};

/// mralab: Expressway-C's MRA certificate verification, reproduced on loopback.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the scenario catalogue against a verifier and compare with the snapshots.
    Scenarios(scenarios::ScenariosArgs),
    /// Start a simulated fleet on loopback: `fleet up steven-lab`.
    Fleet(fleet::FleetArgs),
    /// Build a PKI topology, print its tree, and optionally write every file.
    Pki(pki::PkiArgs),
    /// Show where the RSA key cache lives, or clear it.
    Keys(pki::KeysArgs),
    /// Run the model against live TLS endpoints: one request, or a pre-upgrade check of a
    /// whole cluster. Exit 0: would succeed; 1: would fail; 2: harness fault.
    Verify(verify::VerifyArgs),
    /// Show the suite order an OpenSSL cipher string gives, word by word, and which
    /// certificate (RSA or ECDSA) a node following the client's order would serve.
    Ciphers(ciphers::CiphersArgs),
    /// Diagnose Expressway-C logs (file, folder or .tar.gz bundle): exit 0 nothing found, 1 failures, 2 unreadable.
    Diagnose(diagnose::DiagnoseArgs),
    /// Teaching labs: `lab list | start <lab> | check | hint | reset | stop | reissue`.
    Lab(lab::LabArgs),
    /// Export the catalogue's certificate cases for other harnesses: `export limbo DIR`.
    Export(export::ExportArgs),
    /// Build the container images (`mralab/ats:8.1`, `mralab/ats:9.2`) from Debian's packages,
    /// each only when its recipe changed (`--rebuild` forces it).
    Images(images::ImagesArgs),
    /// Benchmarks: `bench pki | verify | scenarios | fleet | ats`.
    Bench(bench::BenchArgs),
    /// The real OpenSSL 3.0 and 1.1.1w as oracles for the chain model: `oracle build | refresh`.
    Oracle(fuzz::oracle::OracleArgs),
    /// Differential fuzzing: `fuzz chain` (generated chains, the model against both OpenSSLs).
    Fuzz(fuzz::chain::FuzzArgs),
    /// Mutation testing of the verifier model (cargo-mutants): each mutant caught by an
    /// expectation or unit test, by a snapshot alone, missed, timeout or unviable;
    /// `--module`, `--shard k/n`, `--rotate` (CI), `merge`.
    Mutants(mutants::MutantsArgs),
}

fn main() -> std::process::ExitCode {
    // cargo-mutants runs this binary as its `cargo` during `cargo xtask mutants`.
    if let Some(code) = mutants::shim_if_asked() {
        return code;
    }
    let cli = Cli::parse();
    // `fleet up` and the lab's serve process stop cleanly on SIGINT/SIGTERM themselves; every
    // other command, stopped by one, first removes the runroots, scratch folders and process
    // groups it registered (harness::cleanup).
    if !matches!(cli.command, Command::Fleet(_) | Command::Lab(_))
        && let Err(e) = harness::cleanup::on_signal_clean_up_and_exit()
    {
        noteln!("warning: no cleanup on SIGINT/SIGTERM: {e}");
    }
    let result = match cli.command {
        Command::Scenarios(args) => scenarios::run(args),
        Command::Pki(args) => pki::run(args),
        Command::Fleet(args) => fleet::run(args),
        Command::Keys(args) => pki::keys(args),
        Command::Ciphers(args) => ciphers::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Diagnose(args) => diagnose::run(args),
        Command::Lab(args) => lab::run(args),
        Command::Export(args) => export::run(args),
        Command::Images(args) => images::run(args),
        Command::Oracle(args) => fuzz::oracle::run(args),
        Command::Fuzz(args) => fuzz::chain::run(args),
        Command::Mutants(args) => mutants::run(args),
    };
    harness::cleanup::exit_if_signalled();
    match result {
        Ok(code) => code,
        Err(error) if out::is_closed(&error) => std::process::ExitCode::from(out::CLOSED_EXIT_CODE),
        Err(error) => {
            noteln!("error: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}
