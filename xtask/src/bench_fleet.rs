//! `cargo xtask bench fleet-containers`: the container fleet's start-up, answering and memory,
//! and the seed scenarios through ATS 8.1 on it. Figures for people; nothing here is a test.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use harness::container::image::{NODE, NODE_PROGRAM};
use harness::container::nodes::{ContainerFleet, run_in_namespace};
use harness::fleet::{FleetFile, ResolvedFleet};
use harness::pki::{KeyCache, Pki};
use time::OffsetDateTime;

use crate::out::outln;

/// A fleet file of `n` CUCM nodes on `10.48.40.x` over the built-in `fleet:n` PKI.
fn fleet_file(n: usize) -> String {
    let mut text = format!("topology = \"fleet:{n}\"\n");
    for i in 1..=n {
        let role = if i == 1 { "cucm-publisher" } else { "cucm-subscriber" };
        let _ = write!(
            text,
            "\n[fleet.nodes.cucm-{i:02}]\nrole = \"{role}\"\nfqdn = \"cucm-{i:02}.fleet.lab\"\nip = \"10.48.{}.{}\"\n",
            40 + i / 250,
            1 + i % 250
        );
    }
    text
}

/// The resident memory of each of the fleet's node programs and supervisors, from /proc.
fn memory_kib(fleet: &ContainerFleet) -> Vec<u64> {
    let mut out = Vec::new();
    for pid in fleet.nodes().into_iter().map(|n| n.pid) {
        // The supervisor and its children (the node program).
        let mut total = rss_kib(pid);
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            total += children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()).map(rss_kib).sum::<u64>();
        }
        out.push(total);
    }
    out
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().to_string()))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs the bench.
pub fn containers(sizes: &[usize], scenarios: bool) -> anyhow::Result<ExitCode> {
    crate::images::build_program(NODE_PROGRAM)?;
    NODE.check_built()?;
    outln!(
        "container fleet ({}), {} core(s)",
        NODE.image(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )?;
    for &n in sizes {
        let dir = tempfile::TempDir::new()?;
        let path = dir.path().join("fleet.toml");
        std::fs::write(&path, fleet_file(n))?;
        let (file, topology) = FleetFile::load(&path.to_string_lossy())?;
        let pki = Pki::build(&topology, OffsetDateTime::now_utc(), &KeyCache::default())?;
        let config = ResolvedFleet::resolve(&file.fleet, &pki)?.config(&pki)?;
        let started = Instant::now();
        let fleet = ContainerFleet::start(&config).context("starting the container fleet")?;
        let up = started.elapsed();
        // Answering: a TLS handshake with each node's 8443, from inside the namespace.
        let targets: Vec<String> = config
            .nodes
            .iter()
            .map(|node| SocketAddr::new(node.modelled_ip, simulators::TOMCAT_PORT).to_string())
            .collect();
        let mut script = String::from("for t in");
        for t in &targets {
            let _ = write!(script, " {t}");
        }
        script.push_str("; do openssl s_client -connect $t -brief </dev/null >/dev/null 2>&1 || echo $t; done");
        let failed = run_in_namespace(fleet.netns(), &["sh", "-c", &script]).map_err(anyhow::Error::msg)?;
        let answering = started.elapsed();
        let memory = memory_kib(&fleet);
        let total: u64 = memory.iter().sum();
        let per = if memory.is_empty() { 0 } else { total / memory.len() as u64 };
        outln!(
            "{n:>3} nodes: up in {:>6.2} s (containers and programs), all answering a TLS handshake in {:>6.2} s; {} KiB resident per node container (supervisor + mralab-node), {:.1} MiB in all",
            up.as_secs_f64(),
            answering.as_secs_f64(),
            per,
            total as f64 / 1024.0
        )?;
        if !failed.trim().is_empty() {
            outln!("  not answering: {}", failed.trim())?;
        }
        let stopping = Instant::now();
        drop(fleet);
        outln!("{n:>3} nodes: removed in {:>6.2} s", stopping.elapsed().as_secs_f64())?;
    }
    if scenarios {
        let status = std::process::Command::new(std::env::current_exe()?)
            .args(["scenarios", "seed::", "--fleet", "containers", "--verifier", "ats:8.1", "--jobs", "1"])
            .stdout(std::process::Stdio::null())
            .status()?;
        if !status.success() {
            outln!("the seed scenarios failed on the container fleet")?;
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}
