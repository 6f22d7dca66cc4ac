//! `cargo xtask oracle build | refresh`: the real OpenSSL helpers and the stored verdicts.
//!
//! `build` compiles `oracle/verify_oracle.c` with plain `cc` twice into the oracle folder
//! (`target/oracle`, or `$MRALAB_ORACLE_DIR`): against the host's OpenSSL 3.0 (`libssl-dev`), and
//! against Debian 11's OpenSSL 1.1.1w, whose `libssl1.1` and `libssl-dev` packages it fetches
//! from the Debian mirror (checked against pinned SHA-256 sums), unpacks with `dpkg -x` and links
//! with `-rpath`. `refresh` asks both oracles again for every case under
//! `harness/tests/data/chain/` and rewrites the stored verdicts (`--check`: only say which
//! differ, exit 1 if any does).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use harness::chain::OpensslFlavour;
use harness::chain::oracle::{self, FLAVOURS, Oracle, OracleRequest, StoredCase};
use sha2::{Digest, Sha256};

use crate::out::outln;

/// `cargo xtask oracle ...`.
#[derive(Debug, clap::Args)]
pub struct OracleArgs {
    #[command(subcommand)]
    command: OracleCommand,
}

#[derive(Debug, clap::Subcommand)]
enum OracleCommand {
    /// Build both oracle binaries (OpenSSL 3.0 from the host, 1.1.1w from Debian 11's packages).
    Build {
        /// A folder already holding the two Debian 11 .deb files (no download).
        #[arg(long)]
        debs: Option<PathBuf>,
    },
    /// Re-derive the stored verdicts of `harness/tests/data/chain/*.toml` from the oracles.
    Refresh {
        /// Write nothing; exit 1 if a stored verdict differs from the live one.
        #[arg(long)]
        check: bool,
    },
    /// Ask both oracles about PEM files and store the case as `harness/tests/data/chain/NAME.toml`.
    Record(RecordArgs),
}

/// `cargo xtask oracle record NAME --peer leaf.pem [--peer ca.pem] --trusted root.pem ...`.
#[derive(Debug, clap::Args)]
struct RecordArgs {
    /// The case's file name, without `.toml`.
    name: String,
    /// What the case shows.
    #[arg(long)]
    description: String,
    /// PEM files with the peer's certificates, leaf first (each file may hold several).
    #[arg(long, required = true)]
    peer: Vec<PathBuf>,
    /// PEM files with the trust store's certificates, in load order.
    #[arg(long)]
    trusted: Vec<PathBuf>,
    /// Validation time, Unix seconds.
    #[arg(long, default_value_t = 1_800_000_000)]
    time: i64,
    /// Security level.
    #[arg(long, default_value_t = 0)]
    level: u8,
    /// Check the ssl_server purpose, as a TLS client does.
    #[arg(long)]
    ssl_server: bool,
}

/// Debian 11's OpenSSL 1.1.1w packages, as in the `mralab/ats:8.1` image.
const DEBS: [(&str, &str); 2] = [
    ("libssl1.1_1.1.1w-0+deb11u1_amd64.deb", "aadf8b4b197335645b230c2839b4517aa444fd2e8f434e5438c48a18857988f7"),
    ("libssl-dev_1.1.1w-0+deb11u1_amd64.deb", "56aab36e214954ff19e55cb7ebc96921ebd6387c266c906649ad909933d455b7"),
];

/// Runs `cargo xtask oracle`.
pub fn run(args: OracleArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        OracleCommand::Build { debs } => build(debs.as_deref()),
        OracleCommand::Refresh { check } => refresh(check),
        OracleCommand::Record(args) => record(args),
    }
}

fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// The folder of stored chain cases.
pub fn cases_dir() -> PathBuf {
    workspace_root().join("harness/tests/data/chain")
}

fn run_tool(command: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{command:?}");
    let status = command.status().with_context(|| format!("could not run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn build(debs: Option<&Path>) -> anyhow::Result<ExitCode> {
    let dir = oracle::default_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let source = workspace_root().join("oracle/verify_oracle.c");

    // OpenSSL 3.0: the host's.
    if !Path::new("/usr/include/openssl/x509_vfy.h").is_file() {
        bail!("the host's OpenSSL headers are missing: apt-get install libssl-dev");
    }
    let v3 = dir.join(oracle::binary_name(OpensslFlavour::V3_0));
    run_tool(Command::new("cc").args(["-O2", "-Wall", "-o"]).arg(&v3).arg(&source).arg("-lcrypto"))?;

    // OpenSSL 1.1.1w: Debian 11's packages, unpacked beside the binary.
    let deb_dir = match debs {
        Some(d) => d.to_path_buf(),
        None => dir.join("debs"),
    };
    std::fs::create_dir_all(&deb_dir)?;
    let root = dir.join("openssl-1.1.1w");
    for (name, sha) in DEBS {
        let path = deb_dir.join(name);
        if !path.is_file() {
            let mirror = harness::container::image::debian_mirror();
            let url = format!("{}/pool/main/o/openssl/{name}", mirror.trim_end_matches('/'));
            run_tool(Command::new("curl").args(["-fsS", "-o"]).arg(&path).arg(&url))?;
        }
        let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        let got = oracle::hex(&Sha256::digest(&bytes));
        if got != sha {
            bail!("{} has SHA-256 {got}, expected {sha}", path.display());
        }
        run_tool(Command::new("dpkg").arg("-x").arg(&path).arg(&root))?;
    }
    let lib = root.join("usr/lib/x86_64-linux-gnu");
    let v1 = dir.join(oracle::binary_name(OpensslFlavour::V1_1_1));
    let mut rpath = std::ffi::OsString::from("-Wl,-rpath,");
    rpath.push(&lib);
    let mut lib_flag = std::ffi::OsString::from("-L");
    lib_flag.push(&lib);
    run_tool(
        Command::new("cc")
            .args(["-O2", "-Wall"])
            .arg("-I")
            .arg(root.join("usr/include"))
            .arg("-I")
            .arg(root.join("usr/include/x86_64-linux-gnu"))
            .arg("-o")
            .arg(&v1)
            .arg(&source)
            .arg(lib_flag)
            .arg(rpath)
            .arg("-l:libcrypto.so.1.1"),
    )?;
    for flavour in FLAVOURS {
        let path = dir.join(oracle::binary_name(flavour));
        let mut running = Oracle::start(&path)?;
        outln!("{}: {}", path.display(), running.version()?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Every stored case, by file.
pub fn stored_cases() -> anyhow::Result<Vec<(PathBuf, StoredCase)>> {
    let dir = cases_dir();
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => {
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "toml")).collect()
        }
        Err(_) => Vec::new(),
    };
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
            let case: StoredCase = toml::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
            Ok((path, case))
        })
        .collect()
}

/// Both running oracles, or an error saying how to build them.
pub fn start_both() -> anyhow::Result<[(OpensslFlavour, Oracle); 2]> {
    let start = |flavour| -> anyhow::Result<(OpensslFlavour, Oracle)> {
        let path = oracle::find(flavour).with_context(|| {
            format!(
                "no {} oracle in {}: run cargo xtask oracle build",
                oracle::flavour_key(flavour),
                oracle::default_dir().display()
            )
        })?;
        Ok((flavour, Oracle::start(&path)?))
    };
    Ok([start(OpensslFlavour::V1_1_1)?, start(OpensslFlavour::V3_0)?])
}

/// The live verdicts of both libraries for a case's certificates and parameters.
pub fn ask_both(oracles: &mut [(OpensslFlavour, Oracle); 2], case: &mut StoredCase) -> anyhow::Result<()> {
    let certs = case.certs().context("stored case")?;
    for (flavour, running) in oracles.iter_mut() {
        let input = case.input(&certs, *flavour);
        let verdict = running.verify(&OracleRequest::of(&input))?;
        case.verdict.insert(oracle::flavour_key(*flavour).to_string(), verdict);
    }
    Ok(())
}

fn refresh(check: bool) -> anyhow::Result<ExitCode> {
    let mut oracles = start_both()?;
    let mut differing = 0usize;
    let cases = stored_cases()?;
    for (path, case) in &cases {
        let mut live = case.clone();
        ask_both(&mut oracles, &mut live)?;
        if live.verdict != case.verdict {
            differing += 1;
            outln!("{}: stored verdicts differ from the live ones", path.display())?;
            if !check {
                std::fs::write(path, toml::to_string(&live)?)?;
            }
        }
    }
    outln!("{} stored cases, {differing} {}", cases.len(), if check { "differ" } else { "rewritten" })?;
    Ok(if check && differing > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn pem_ders(paths: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    use rustls_pki_types::pem::PemObject as _;
    let mut out = Vec::new();
    for path in paths {
        for der in
            rustls_pki_types::CertificateDer::pem_file_iter(path).with_context(|| format!("read {}", path.display()))?
        {
            out.push(oracle::hex(der.with_context(|| format!("PEM in {}", path.display()))?.as_ref()));
        }
    }
    Ok(out)
}

fn record(args: RecordArgs) -> anyhow::Result<ExitCode> {
    let mut case = StoredCase {
        description: args.description,
        time: args.time,
        security_level: args.level,
        ssl_server: args.ssl_server,
        verify_depth: harness::chain::OPENSSL_DEFAULT_VERIFY_DEPTH,
        peer: pem_ders(&args.peer)?,
        trusted: pem_ders(&args.trusted)?,
        verdict: Default::default(),
    };
    let mut oracles = start_both()?;
    ask_both(&mut oracles, &mut case)?;
    let path = cases_dir().join(format!("{}.toml", args.name));
    std::fs::create_dir_all(cases_dir())?;
    std::fs::write(&path, toml::to_string(&case)?)?;
    for (key, verdict) in &case.verdict {
        outln!("{key}: chain {} errors {:?}", verdict.chain.join(","), verdict.errors)?;
    }
    outln!("wrote {}", path.display())?;
    Ok(ExitCode::SUCCESS)
}
