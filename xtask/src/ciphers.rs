//! `cargo xtask ciphers '<string>'`: what an OpenSSL cipher string means to Expressway-C.

use std::process::ExitCode;

use crate::out::out;
use clap::Args;
use harness::ciphers::CipherList;

#[derive(Debug, Args)]
pub struct CiphersArgs {
    /// An OpenSSL cipher string, as `xConfiguration Ciphers` takes it; Expressway's default
    /// when absent.
    string: Option<String>,
}

pub fn run(args: CiphersArgs) -> anyhow::Result<ExitCode> {
    let string = args.string.unwrap_or_else(|| harness::ciphers::EXPRESSWAY_DEFAULT.to_string());
    let list = CipherList::parse(&string)?;
    out!("{}", list.report())?;
    Ok(ExitCode::SUCCESS)
}
