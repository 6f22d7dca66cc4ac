//! `cargo xtask fleet up`: a simulated fleet on loopback, for people and their tools.

use std::path::PathBuf;
use std::process::ExitCode;

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
    },
}

pub fn run(args: FleetArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        FleetWhat::Up { fleet, out } => up(&fleet, out),
    }
}

fn up(name: &str, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (file, topology) = FleetFile::load(name).map_err(anyhow::Error::msg)?;
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
        let fleet = Fleet::start(config).await.context("starting the fleet")?;
        let nodes = fleet.nodes();
        println!("{}", simulators::render_table(&nodes));
        println!("PKI written to {} (trust/roots.pem, certs/, chains/)", dir.display());
        if let Some(node) = nodes.first()
            && let Some(service) = node.services.first()
        {
            let ip = service.addr.ip();
            println!("\ntry:");
            println!(
                "  openssl s_client -connect {ip}:6972 -cipher 'ECDHE-RSA-AES256-GCM-SHA384:EECDH:EDH:HIGH' -CAfile {}/trust/roots.pem </dev/null",
                dir.display()
            );
            println!("  openssl s_client -connect {ip}:6972 -cipher 'EECDH:EDH:HIGH' </dev/null");
            println!(
                "  curl --ciphers ECDHE-RSA-AES256-GCM-SHA384 --resolve {fqdn}:8443:{ip} --cacert {}/trust/roots.pem https://{fqdn}:8443/cucm-uds/servers",
                dir.display(),
                fqdn = node.fqdn
            );
        }
        println!("  (curl prefers ECDSA by default: without --ciphers it gets the self-signed tomcat-ECDSA)");
        if config_key_log() {
            println!("  TLS secrets go to $SSLKEYLOGFILE: open a capture of lo in Wireshark with it");
        }
        println!("\nserving until Ctrl-C");
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
        println!();
        for event in fleet.take_events() {
            println!("{event}");
        }
        fleet.stop().await;
        println!("fleet stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn config_key_log() -> bool {
    std::env::var_os("SSLKEYLOGFILE").is_some()
}
