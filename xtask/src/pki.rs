//! `cargo xtask pki` and `cargo xtask keys`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::out::{out, outln};
use anyhow::Context as _;
use clap::Args;
use harness::pki::{KeyCache, Pki, Topology, builtin};
use harness::source::Source;
use time::OffsetDateTime;

#[derive(Debug, Args)]
pub struct PkiArgs {
    /// A built-in topology (steven-lab, cucm-default, vngtp, vngtp:N, fleet:N) or a TOML file.
    topology: String,
    /// Write certificates, keys, chains and trust bundles into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Validation time (RFC 3339); default now, since openssl and curl read the real clock.
    #[arg(long)]
    at: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Remove every cached key.
    #[arg(long)]
    clear: bool,
}

/// Reads a topology named on the command line: a built-in name, or a path to a TOML file.
pub fn load_topology(name: &str) -> anyhow::Result<Topology> {
    let path = PathBuf::from(name);
    if name.ends_with(".toml") || path.is_file() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading topology {name}"))?;
        return Ok(Topology::from_toml(&Source::new(name, text))?);
    }
    Ok(builtin::topology(name)?)
}

pub fn run(args: PkiArgs) -> anyhow::Result<ExitCode> {
    let topology = load_topology(&args.topology)?;
    let at = match &args.at {
        Some(at) => OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .with_context(|| format!("--at '{at}' is not an RFC 3339 time (2022-07-11T16:55:26Z)"))?,
        None => OffsetDateTime::now_utc(),
    };
    let pki = Pki::build(&topology, at, &KeyCache::default())?;
    out!("{}", pki.tree())?;
    if let Some(out) = &args.out {
        pki.write_dir(out)?;
        outln!("\nwrote {} (certs/, chains/, trust/, tree.txt)", out.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn keys(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let cache = KeyCache::default();
    let dir = cache.dir().map(|d| d.display().to_string()).unwrap_or_default();
    if args.clear {
        cache.clear()?;
        outln!("cleared {dir}")?;
    } else {
        outln!("{dir}")?;
    }
    Ok(ExitCode::SUCCESS)
}
