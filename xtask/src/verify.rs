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
//! servers.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use harness::expressway::{ExpresswaySpec, TrustStore, Version};
use harness::verifier::builtin::BuiltinVerifier;
use harness::verifier::{ClientIdentity, Failure, LogSettings, OriginRequest, Outcome, Purpose, Session, Verifier};
use time::OffsetDateTime;

use crate::expressway::ExpresswayArgs;

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
    let result = if args.publisher.is_some() { preflight(&args) } else { single(&args) };
    match result {
        Ok(code) => Ok(code),
        Err(Fault(e)) => {
            eprintln!("error: {e:#}");
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
    let chain = harness::expressway::pem_certificates(&pem).map_err(anyhow::Error::msg)?;
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

fn session(spec: ExpresswaySpec, trust: TrustStore, identity: Option<ClientIdentity>) -> Session {
    let now = OffsetDateTime::now_utc();
    Session {
        peer: "vcsc".into(),
        expressway: spec,
        trust,
        client_identity: identity,
        validation_time: now,
        log: LogSettings { pid: std::process::id(), ..LogSettings::seed(now) },
    }
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

fn print_outcome(outcome: &Outcome) {
    for (i, served) in outcome.served.iter().enumerate() {
        println!("served[{i}] {served}");
    }
    if let Some((version, suite)) = &outcome.tls {
        println!("tls {version} {suite}");
    }
    for line in &outcome.log {
        println!("{line}");
    }
    for line in &outcome.debug {
        println!("(debug) {line}");
    }
    println!(
        "status {} {}{}",
        outcome.status,
        outcome.reason,
        outcome.failure.as_ref().map(|f| format!(" [{f}]")).unwrap_or_default()
    );
}

fn single(args: &VerifyArgs) -> Result<ExitCode, Fault> {
    let connect = args.connect.as_deref().context("give --connect ADDR:PORT or --publisher ADDR")?;
    let dial = resolve(connect, 8443)?;
    let host = args.host.clone().unwrap_or_else(|| host_part(connect));
    let spec = args.expressway.spec(&host)?;
    let mut verifier = BuiltinVerifier::danger_allow_non_loopback(args.expressway.profile()?);
    verifier.open(&session(spec, trust_store(&args.trust)?, client_identity(args)?))?;
    let path = args.path.clone().unwrap_or_else(|| default_path(dial.port()).to_string());
    let outcome = verifier.request(&OriginRequest {
        host,
        modelled_ip: dial.ip(),
        port: dial.port(),
        dial,
        method: "GET".into(),
        path,
        purpose: Purpose::Mra,
    })?;
    print_outcome(&outcome);
    if let Some(Failure::Connect { reason }) = &outcome.failure
        && outcome.tls.is_none()
    {
        return Err(anyhow::anyhow!("nothing answered at {dial}: {reason}").into());
    }
    Ok(if outcome.status == 502 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn default_path(port: u16) -> &'static str {
    if port == 6972 { "/SPDefault.cnf.xml" } else { "/cucm-uds/version" }
}

fn preflight(args: &VerifyArgs) -> Result<ExitCode, Fault> {
    let publisher = args.publisher.as_deref().context("--publisher")?;
    let (Some(from), Some(to)) = (&args.upgrade_from, &args.upgrade_to) else {
        return Err(anyhow::anyhow!("--publisher needs --upgrade-from and --upgrade-to").into());
    };
    let from: Version = from.parse().map_err(anyhow::Error::msg)?;
    let to: Version = to.parse().map_err(anyhow::Error::msg)?;
    let mut resolved: Vec<(String, IpAddr)> = Vec::new();
    for entry in &args.resolve {
        let (name, addr) = entry.split_once(':').context("--resolve takes NAME:ADDR")?;
        resolved.push((name.to_string(), addr.parse().with_context(|| format!("--resolve {entry}"))?));
    }
    let lookup = |name: &str, port: u16| -> Result<SocketAddr, Fault> {
        match resolved.iter().find(|(n, _)| n == name) {
            Some((_, ip)) => Ok(SocketAddr::new(*ip, port)),
            None => resolve(name, port),
        }
    };
    let publisher_host = args.host.clone().unwrap_or_else(|| host_part(publisher));
    let publisher_dial = match resolved.iter().find(|(n, _)| *n == publisher_host) {
        Some((_, ip)) => SocketAddr::new(*ip, 8443),
        None => resolve(publisher, 8443)?,
    };
    let trust = trust_store(&args.trust)?;
    let identity = client_identity(args)?;
    let profile = args.expressway.profile()?;
    let mut today_spec = ExpresswaySpec::new(from.clone(), None, &publisher_host);
    if let Some(ciphers) = &args.expressway.ciphers {
        today_spec.ciphers = Some(ciphers.clone());
    }
    let mut after_spec = today_spec.clone();
    after_spec.upgrade(to.clone());
    let mut today = BuiltinVerifier::danger_allow_non_loopback(profile);
    today.open(&session(today_spec.clone(), trust.clone(), identity.clone()))?;
    let mut after = BuiltinVerifier::danger_allow_non_loopback(profile);
    after.open(&session(after_spec.clone(), trust, identity))?;

    let discovery = today.request(&OriginRequest {
        host: publisher_host.clone(),
        modelled_ip: publisher_dial.ip(),
        port: publisher_dial.port(),
        dial: publisher_dial,
        method: "GET".into(),
        path: "/cucm-uds/servers".into(),
        purpose: Purpose::Discovery { tls_verify_mode: false },
    })?;
    if !discovery.ok() {
        print_outcome(&discovery);
        return Err(anyhow::anyhow!(
            "discovery from {publisher_host} failed: {} {}",
            discovery.status,
            discovery.reason
        )
        .into());
    }
    let names = harness::fleet::servers_in(&discovery.body);
    println!("publisher {publisher_host} advertises: {}", names.join(", "));
    println!("today: {} (ciphers {}; policy {})", today_spec.version, today_spec.ciphers(), today_spec.policy());
    println!("after: {} (ciphers {}; policy {})\n", after_spec.version, after_spec.ciphers(), after_spec.policy());
    let mut breaks = 0;
    for name in &names {
        for port in [8443u16, 6972] {
            let dial = lookup(name, port)?;
            let request = OriginRequest {
                host: name.clone(),
                modelled_ip: dial.ip(),
                port,
                dial,
                method: "GET".into(),
                path: default_path(port).into(),
                purpose: Purpose::Mra,
            };
            let now = today.request(&request)?;
            if now.tls.is_none() && matches!(now.failure, Some(Failure::Connect { .. })) {
                println!("{name}:{port}  not listening");
                continue;
            }
            let later = after.request(&request)?;
            let verdict = |o: &Outcome| {
                format!(
                    "{} {}{}",
                    o.status,
                    o.reason,
                    o.failure.as_ref().map(|f| format!(" [{f}]")).unwrap_or_default()
                )
            };
            let served = |o: &Outcome| o.served.first().map(ToString::to_string).unwrap_or_else(|| "nothing".into());
            println!("{name}:{port}");
            println!("  today  served {}\n         -> {}", served(&now), verdict(&now));
            println!("  after  served {}\n         -> {}", served(&later), verdict(&later));
            for line in later.log.iter().filter(|l| l.contains("WARNING")).take(1) {
                println!("         {line}");
            }
            if now.status != 502 && later.status == 502 {
                breaks += 1;
                println!("  !! breaks with the upgrade");
            }
        }
    }
    println!("\n{breaks} node port(s) break with the upgrade");
    Ok(if breaks > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
