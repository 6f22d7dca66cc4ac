//! `mralab-node <config.json> <control FIFO>`: one node of a simulated fleet, the program of the
//! `mralab/node` image. It binds the node's modelled address (`10.48.36.215:8443`, `:6972`) in
//! the container's private network namespace, prints `ready`, then carries out the harness's
//! commands read from the FIFO and answers on stdout, one JSON line each (the format is
//! `simulators::node`). It ends when the FIFO's writer closes (the harness stopped the node, or
//! went away) or when its supervisor kills it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use simulators::Fleet;
use simulators::node::{Command, NodeProgramConfig, PROTOCOL, Reply};

fn say(reply: &Reply) {
    // One whole line per reply: the harness reads the output file line by line.
    if let Ok(line) = serde_json::to_string(reply) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, config, control] = args.as_slice() else {
        eprintln!("usage: mralab-node <config.json> <control FIFO>");
        return ExitCode::from(2);
    };
    match run(config, control) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mralab-node: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &str, control: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(config).map_err(|e| format!("{config}: {e}"))?;
    let config: NodeProgramConfig = serde_json::from_str(&text).map_err(|e| format!("{config}: {e}"))?;
    config.check().map_err(|e| e.to_string())?;
    let serve = config.serve.clone();
    let fleet_config = config.fleet.serving(&serve).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let fleet = runtime.block_on(Fleet::start_in_private_namespace(fleet_config)).map_err(|e| e.to_string())?;
    // The harness decrypts captures of the container fleet with them.
    fleet.keep_secrets(true);
    let listening = fleet
        .nodes()
        .into_iter()
        .filter(|n| n.name == serve)
        .flat_map(|n| n.services.into_iter().map(|s| s.addr))
        .collect();
    say(&Reply::Ready { protocol: PROTOCOL, node: serve.clone(), listening });
    // Opening for reading waits for the harness to open its end.
    let fifo = std::fs::File::open(control).map_err(|e| format!("{control}: {e}"))?;
    for line in BufReader::new(fifo).lines() {
        let line = line.map_err(|e| format!("{control}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let command: Command = match serde_json::from_str(&line) {
            Ok(c) => c,
            Err(e) => {
                say(&Reply::Failed { seq: 0, error: format!("unreadable command: {e}") });
                continue;
            }
        };
        match command {
            Command::Take { seq, settle_ms } => {
                let quiet = runtime.block_on(fleet.settle(Duration::from_millis(settle_ms)));
                for event in fleet.take_events().into_iter().filter(|e| e.node == serve) {
                    say(&Reply::Event(event));
                }
                for line in fleet.take_recordings().key_log {
                    say(&Reply::Secret(line));
                }
                say(&Reply::Done { seq, quiet });
            }
            Command::SetIdentities { seq, port, rsa, ecdsa } => {
                let result = (|| {
                    let rsa = rsa.as_ref().map(|i| i.identity()).transpose().map_err(|e| e.to_string())?;
                    let ecdsa = ecdsa.as_ref().map(|i| i.identity()).transpose().map_err(|e| e.to_string())?;
                    fleet.set_identities(&serve, port, rsa, ecdsa).map_err(|e| e.to_string())
                })();
                say(&match result {
                    Ok(()) => Reply::Done { seq, quiet: true },
                    Err(error) => Reply::Failed { seq, error },
                });
            }
            Command::SetSystemServer { seq, node, name } => {
                say(&match fleet.set_system_server(&node, &name) {
                    Ok(()) => Reply::Done { seq, quiet: true },
                    Err(e) => Reply::Failed { seq, error: e.to_string() },
                });
            }
        }
    }
    runtime.block_on(fleet.stop());
    Ok(())
}
