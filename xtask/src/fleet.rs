//! `cargo xtask fleet up`: a simulated fleet on loopback, for people and their tools.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::out::outln;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use harness::fleet::{FleetFile, ResolvedFleet};
use harness::pki::{KeyCache, Pki};
use simulators::Fleet;
use time::OffsetDateTime;

#[derive(Debug, Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    what: FleetWhat,
}

#[derive(Debug, Subcommand)]
enum FleetWhat {
    /// Start a fleet and serve until Ctrl-C.
    Up {
        /// A built-in fleet (steven-lab, cucm-default) or a fleet TOML file.
        fleet: String,
        /// Where to write the PKI (CA bundles for `curl --cacert`, `openssl s_client -CAfile`);
        /// a temporary folder when absent.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also start Expressway-C's front door on this loopback address (e.g. 127.0.0.1:8080;
        /// port 0 picks one): it discovers the fleet, then proxies MRA paths through the model.
        #[arg(long)]
        front_door: Option<std::net::SocketAddr>,
        /// Certificate ids in Expressway-C's trust store (default: every root of the topology).
        #[arg(long = "trust")]
        trust: Vec<String>,
        /// Each node in a `mralab/node` container on its modelled address (`10.48.36.215`), all
        /// in one private network namespace with no route off the machine (root; `cargo xtask
        /// images` builds the image). Prints how to reach each node from inside the namespace.
        #[arg(long, conflicts_with = "front_door")]
        containers: bool,
        #[command(flatten)]
        expressway: crate::expressway::ExpresswayArgs,
    },
}

pub fn run(args: FleetArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        FleetWhat::Up { fleet, out, containers: true, .. } => up_containers(&fleet, out),
        FleetWhat::Up { fleet, out, front_door, trust, expressway, containers: false } => {
            up(&fleet, out, front_door, trust, expressway)
        }
    }
}

fn up(
    name: &str,
    out: Option<PathBuf>,
    front_door: Option<std::net::SocketAddr>,
    trust: Vec<String>,
    expressway: crate::expressway::ExpresswayArgs,
) -> anyhow::Result<ExitCode> {
    let (file, topology) = FleetFile::load(name)?;
    // Real clients (openssl, curl) read the real clock: build the PKI for now.
    let pki = Pki::build(&topology, OffsetDateTime::now_utc(), &KeyCache::default())?;
    let resolved = ResolvedFleet::resolve(&file.fleet, &pki)?;
    let mut config = resolved.config(&pki)?;
    config.key_log = std::env::var_os("SSLKEYLOGFILE").is_some();
    let temp;
    let dir = match out {
        Some(dir) => dir,
        None => {
            temp = tempfile::TempDir::new()?;
            temp.path().to_path_buf()
        }
    };
    pki.write_dir(&dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        // Listening from the start: Ctrl-C or SIGTERM: stop cleanly either way, so the temporary PKI (private keys
        // included) is removed when `temp` drops.
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("listening for Ctrl-C")?;
        let fleet = Fleet::start(config).await.context("starting the fleet")?;
        let nodes = fleet.nodes();
        outln!("{}", simulators::render_table(&nodes))?;
        outln!("PKI written to {} (trust/roots.pem, certs/, chains/)", dir.display())?;
        if let Some(node) = nodes.first()
            && let Some(service) = node.services.first()
        {
            let ip = service.addr.ip();
            outln!("\ntry:")?;
            outln!(
                "  openssl s_client -connect {ip}:6972 -cipher 'ECDHE-RSA-AES256-GCM-SHA384:EECDH:EDH:HIGH' -CAfile {}/trust/roots.pem </dev/null",
                dir.display()
            )?;
            outln!("  openssl s_client -connect {ip}:6972 -cipher 'EECDH:EDH:HIGH' </dev/null")?;
            outln!(
                "  curl --ciphers ECDHE-RSA-AES256-GCM-SHA384 --resolve {fqdn}:8443:{ip} --cacert {}/trust/roots.pem https://{fqdn}:8443/cucm-uds/servers",
                dir.display(),
                fqdn = node.fqdn
            )?;
        }
        outln!("  (curl prefers ECDSA by default: without --ciphers it gets the self-signed tomcat-ECDSA)")?;
        let door = match front_door {
            None => None,
            Some(addr) => Some(open_front_door(addr, &pki, &resolved, &fleet, &trust, &expressway).await?),
        };
        if config_key_log() {
            outln!("  TLS secrets go to $SSLKEYLOGFILE: open a capture of lo in Wireshark with it")?;
        }
        outln!("\nserving until Ctrl-C")?;
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        outln!()?;
        if let Some(door) = door {
            door.stop().await;
        }
        for event in fleet.take_events() {
            outln!("{event}")?;
        }
        fleet.stop().await;
        outln!("fleet stopped")?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `fleet up --containers`: the fleet as containers until Ctrl-C, then nothing left.
fn up_containers(name: &str, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    use harness::container::image::{NODE, NODE_PROGRAM};
    use harness::container::nodes::ContainerFleet;
    // Ctrl-C from the start: the containers go when `fleet` drops.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut terminate, mut interrupt) = runtime.block_on(async {
        anyhow::Ok((
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("listening for SIGTERM")?,
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .context("listening for Ctrl-C")?,
        ))
    })?;
    let (file, topology) = FleetFile::load(name)?;
    let pki = Pki::build(&topology, OffsetDateTime::now_utc(), &KeyCache::default())?;
    let resolved = ResolvedFleet::resolve(&file.fleet, &pki)?;
    let config = resolved.config(&pki)?;
    let temp;
    let dir = match out {
        Some(dir) => dir,
        None => {
            temp = tempfile::TempDir::new()?;
            temp.path().to_path_buf()
        }
    };
    pki.write_dir(&dir)?;
    crate::images::build_program(NODE_PROGRAM)?;
    NODE.check_built()?;
    let fleet = ContainerFleet::start(&config).context("starting the container fleet")?;
    let netns = fleet.netns().display().to_string();
    outln!(
        "{} node container(s) of {} up in {:.2} s, one network namespace ({netns}):",
        config.nodes.len(),
        NODE.image(),
        fleet.started_in.as_secs_f64()
    )?;
    for (node, info) in resolved.nodes.iter().zip(fleet.nodes()) {
        outln!("  {:<16} {:<15} {:<28} container {}", info.name, info.ip.to_string(), node.spec.fqdn, info.container)?;
    }
    outln!("PKI written to {} (trust/roots.pem, certs/, chains/)", dir.display())?;
    outln!("\nreach a node from inside the namespace (as root):")?;
    for (node, info) in resolved.nodes.iter().zip(fleet.nodes()).take(3) {
        let (fqdn, ip) = (&node.spec.fqdn, info.ip);
        outln!(
            "  nsenter --net={netns} curl --ciphers ECDHE-RSA-AES256-GCM-SHA384 --cacert {}/trust/roots.pem --resolve {fqdn}:8443:{ip} https://{fqdn}:8443/cucm-uds/servers",
            dir.display()
        )?;
        outln!("  nsenter --net={netns} openssl s_client -connect {ip}:6972 -servername {fqdn} </dev/null")?;
    }
    outln!("\nserving until Ctrl-C")?;
    runtime.block_on(async {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    });
    outln!()?;
    for event in fleet.take_events()? {
        outln!("{event}")?;
    }
    drop(fleet);
    outln!("fleet stopped; its containers are removed")?;
    Ok(ExitCode::SUCCESS)
}

fn config_key_log() -> bool {
    std::env::var_os("SSLKEYLOGFILE").is_some()
}

/// Discovers the fleet through the model and opens the front door.
async fn open_front_door(
    addr: std::net::SocketAddr,
    pki: &Pki,
    resolved: &ResolvedFleet,
    fleet: &Fleet,
    trust: &[String],
    args: &crate::expressway::ExpresswayArgs,
) -> anyhow::Result<harness::frontdoor::FrontDoor> {
    use harness::verifier::{LogSettings, Session, Verifier as _, builtin::BuiltinVerifier};
    let publisher = resolved
        .nodes
        .iter()
        .find(|n| n.spec.role == harness::fleet::RoleSpec::CucmPublisher)
        .map(|n| n.spec.fqdn.clone())
        .context("the fleet has no CUCM publisher to discover from")?;
    let spec = args.spec(&publisher)?;
    let mut store = harness::expressway::TrustStore::default();
    let ids: Vec<String> = if trust.is_empty() {
        pki.certs().filter(|c| c.role == harness::pki::Role::Root).map(|c| c.id.clone()).collect()
    } else {
        trust.to_vec()
    };
    for id in &ids {
        store.add(id, pki.cert(id)?.der.clone())?;
    }
    let identity = harness::verifier::ClientIdentity::from_pki(pki, None)?;
    let now = OffsetDateTime::now_utc();
    let session = Session {
        peer: "vcsc".into(),
        expressway: spec,
        trust: store,
        client_identity: identity,
        validation_time: now,
        log: LogSettings { pid: std::process::id(), ..LogSettings::seed(now) },
    };
    let mut verifier = BuiltinVerifier::new(args.profile()?);
    verifier.open(&session)?;
    let (routes, outcome, verifier) = tokio::task::block_in_place(|| {
        harness::frontdoor::discover(&mut verifier, &publisher, resolved, fleet, false).map(|(r, o)| (r, o, verifier))
    })?;
    for line in &outcome.log {
        outln!("{line}")?;
    }
    outln!("discovery of {publisher}: {} {} ({} routes)", outcome.status, outcome.reason, routes.len())?;
    let names: Vec<String> = routes.keys().map(|(h, p)| format!("{h}:{p}")).collect();
    let door = harness::frontdoor::FrontDoor::start(addr, Box::new(verifier), routes, |line| {
        // A request's log line; with stdout closed it is lost, and the fleet serves on.
        let _ = outln!("{line}");
    })
    .await?;
    outln!("\nExpressway-C front door on http://{} ({})", door.addr(), session.expressway.version)?;
    for name in names {
        let (host, port) = name.rsplit_once(':').unwrap_or((&name, ""));
        let port: u16 = port.parse().unwrap_or(simulators::TOMCAT_PORT);
        let path = harness::preflight::default_path(port);
        outln!(
            "  curl -i http://{}{}",
            door.addr(),
            harness::mra::encode(&session.expressway.domain, host, port, path)
        )?;
    }
    Ok(door)
}
