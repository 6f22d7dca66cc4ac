//! `cargo xtask verify`: the model run against live TLS endpoints, as a preflight.
//!
//! - `--connect ADDR:PORT --host NAME --trust CA.pem`: one request, printed with the
//!   certificate served, the traffic server's lines and the status. Exit 0 when the request
//!   would succeed, 1 when it would fail, 2 for a harness fault.
//! - `--publisher ADDR --trust CA.pem --upgrade-from X14.0.7 --upgrade-to X14.2`: discover the
//!   nodes the publisher advertises and show, per node and port, the certificate served and
//!   the verdict under today's and the post-upgrade cipher list and policy.
//!
//! This is the one command that may dial outside loopback: a person aims it at their own
//! servers. It parses arguments, resolves names and prints; `harness::preflight` decides.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use harness::expressway::TrustStore;
use harness::preflight::{self, Expressway, PreflightError, Upgrade};
use harness::verifier::{ClientIdentity, Outcome};
use simulators::{TFTP_PORT, TOMCAT_PORT};

use crate::expressway::ExpresswayArgs;
use crate::out::{noteln, outln};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// One endpoint: ADDR:PORT to dial.
    #[arg(long, conflicts_with = "publisher")]
    connect: Option<String>,
    /// The host name the request uses (SNI and name check); the --connect host by default.
    #[arg(long)]
    host: Option<String>,
    /// Path to request.
    #[arg(long)]
    path: Option<String>,
    /// A CUCM publisher to discover from: ADDR or ADDR:PORT (8443 by default).
    #[arg(long)]
    publisher: Option<String>,
    /// Map an advertised name to an address, as curl's --resolve: NAME:ADDR.
    #[arg(long = "resolve")]
    resolve: Vec<String>,
    /// Expressway-C's trust store: a PEM file of CA (or self-signed) certificates.
    #[arg(long)]
    trust: PathBuf,
    /// Expressway-C's client certificate (PEM chain) for nodes that ask for one (6972).
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long)]
    client_key: Option<PathBuf>,
    /// With --publisher: the version running today.
    #[arg(long)]
    upgrade_from: Option<String>,
    /// With --publisher: the version after the upgrade.
    #[arg(long)]
    upgrade_to: Option<String>,
    #[command(flatten)]
    expressway: ExpresswayArgs,
}

/// A fault: exit 2.
struct Fault(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Fault {
    fn from(e: E) -> Self {
        Fault(e.into())
    }
}

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let result = if args.publisher.is_some() { compare(&args) } else { single(&args) };
    match result {
        Ok(code) => Ok(code),
        // Standard output closed: no fault of the servers or the harness; `main` ends quietly.
        Err(Fault(e)) if crate::out::is_closed(&e) => Err(e),
        Err(Fault(e)) => {
            noteln!("error: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn trust_store(path: &PathBuf) -> Result<TrustStore, Fault> {
    let pem = std::fs::read_to_string(path).with_context(|| format!("reading --trust {}", path.display()))?;
    let mut store = TrustStore::default();
    store.add_pem(&path.display().to_string(), &pem).map_err(|e| anyhow::anyhow!("--trust {}: {e}", path.display()))?;
    Ok(store)
}

fn client_identity(args: &VerifyArgs) -> Result<Option<ClientIdentity>, Fault> {
    let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) else { return Ok(None) };
    let pem = std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
    let chain = harness::expressway::pem_certificates(&pem)?;
    if chain.is_empty() {
        return Err(anyhow::anyhow!("--client-cert {} holds no certificate", cert.display()).into());
    }
    let key_pem = std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
    let key = x509_key(&key_pem).with_context(|| format!("--client-key {}", key.display()))?;
    Ok(Some(ClientIdentity { chain, key }))
}

fn x509_key(pem: &str) -> anyhow::Result<rustls_pki_types::PrivateKeyDer<'static>> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| anyhow::anyhow!("no private key: {e}"))
}

fn resolve(addr: &str, default_port: u16) -> Result<SocketAddr, Fault> {
    let with_port = if addr.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        addr.to_string()
    } else {
        format!("{addr}:{default_port}")
    };
    Ok(with_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {with_port}"))?
        .next()
        .with_context(|| format!("{with_port} resolves to no address"))?)
}

fn host_part(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host.trim_matches(['[', ']']).to_string(),
        _ => addr.to_string(),
    }
}

fn print_outcome(outcome: &Outcome) -> anyhow::Result<()> {
    for (i, served) in outcome.served.iter().enumerate() {
        outln!("served[{i}] {served}")?;
    }
    if let Some((version, suite)) = &outcome.tls {
        outln!("tls {version} {suite}")?;
    }
    for line in &outcome.log {
        outln!("{line}")?;
    }
    for line in &outcome.debug {
        outln!("(debug) {line}")?;
    }
    outln!("status {}", outcome.summary())
}

fn expressway(args: &VerifyArgs) -> Result<Expressway, Fault> {
    Ok(Expressway {
        trust: trust_store(&args.trust)?,
        identity: client_identity(args)?,
        profile: args.expressway.profile()?,
    })
}

fn single(args: &VerifyArgs) -> Result<ExitCode, Fault> {
    let connect = args.connect.as_deref().context("give --connect ADDR:PORT or --publisher ADDR")?;
    let dial = resolve(connect, TOMCAT_PORT)?;
    let host = args.host.clone().unwrap_or_else(|| host_part(connect));
    let spec = args.expressway.spec(&host)?;
    let outcome = preflight::check_one(&expressway(args)?, spec, &host, dial, args.path.as_deref());
    let outcome = outcome.map_err(anyhow::Error::from)?;
    print_outcome(&outcome)?;
    Ok(if outcome.status == 502 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn compare(args: &VerifyArgs) -> Result<ExitCode, Fault> {
    let publisher = args.publisher.as_deref().context("--publisher")?;
    let (Some(from), Some(to)) = (&args.upgrade_from, &args.upgrade_to) else {
        return Err(anyhow::anyhow!("--publisher needs --upgrade-from and --upgrade-to").into());
    };
    let upgrade = Upgrade {
        from: from.parse::<harness::expressway::Version>()?,
        to: to.parse::<harness::expressway::Version>()?,
        ciphers: args.expressway.ciphers.clone(),
    };
    let mut overrides: Vec<(String, IpAddr)> = Vec::new();
    for entry in &args.resolve {
        let (name, addr) = entry.split_once(':').context("--resolve takes NAME:ADDR")?;
        overrides.push((name.to_string(), addr.parse().with_context(|| format!("--resolve {entry}"))?));
    }
    let publisher_host = args.host.clone().unwrap_or_else(|| host_part(publisher));
    let publisher_dial = match preflight::resolved(&overrides, &publisher_host, TOMCAT_PORT) {
        Some(dial) => dial,
        None => resolve(publisher, TOMCAT_PORT)?,
    };
    let lookup = |name: &str, port: u16| match preflight::resolved(&overrides, name, port) {
        Some(dial) => Ok(dial),
        None => resolve(name, port).map_err(|Fault(e)| PreflightError::Resolve {
            name: name.into(),
            port,
            reason: format!("{e:#}"),
        }),
    };
    let comparison =
        match preflight::compare_upgrade(&expressway(args)?, &upgrade, &publisher_host, publisher_dial, lookup) {
            Ok(comparison) => comparison,
            Err(PreflightError::Discovery { outcome, publisher }) => {
                print_outcome(&outcome)?;
                let error = PreflightError::Discovery { outcome, publisher };
                return Err(anyhow::Error::from(error).into());
            }
            Err(e) => return Err(anyhow::Error::from(e).into()),
        };
    let (today, after) = (&comparison.today, &comparison.after);
    outln!("publisher {publisher_host} advertises: {}", comparison.advertised.join(", "))?;
    outln!("today: {} (ciphers {}; policy {})", today.version, today.ciphers(), today.policy())?;
    outln!("after: {} (ciphers {}; policy {})\n", after.version, after.ciphers(), after.policy())?;
    let served = |o: &Outcome| o.served.first().map(ToString::to_string).unwrap_or_else(|| "nothing".into());
    for name in &comparison.advertised {
        for port in [TOMCAT_PORT, TFTP_PORT] {
            if comparison.not_listening.iter().any(|(n, p)| n == name && *p == port) {
                outln!("{name}:{port}  not listening")?;
                continue;
            }
            let Some(p) = comparison.ports.iter().find(|p| &p.name == name && p.port == port) else { continue };
            outln!("{name}:{port}")?;
            outln!("  today  served {}\n         -> {}", served(&p.today), p.today.summary())?;
            outln!("  after  served {}\n         -> {}", served(&p.after), p.after.summary())?;
            for line in p.after.log.iter().filter(|l| l.contains("WARNING")).take(1) {
                outln!("         {line}")?;
            }
            if p.breaks() {
                outln!("  !! breaks with the upgrade")?;
            }
        }
    }
    let breaks = comparison.breaks();
    outln!("\n{breaks} node port(s) break with the upgrade")?;
    Ok(if breaks > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
