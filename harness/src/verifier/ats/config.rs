//! The ats verifier's runroot, laid out for one session and its targets (foreseen or seen): a
//! copy of `/etc/trafficserver` as sysconfdir with our `records.config`, `remap.config` (a rule
//! per [`Target`], and one for the readiness probe) and an empty `storage.config`,
//! `runroot.yaml`, private log, runtime and cache folders, an empty hosts file (so that the
//! machine's `/etc/hosts` is never read: names come from the stub DNS alone), a `resolv.conf`
//! naming the stub DNS, the peer's trust store as PEM and Expressway-C's client certificate,
//! and the [`environment`] `traffic_server` runs with. The verifier in the parent module writes
//! it before every start of `traffic_server`; nothing here runs anything.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rustls_pki_types::PrivateKeyDer;

use crate::expressway::{ExpresswaySpec, Policy, Properties, TlsVersion};
use crate::pki::pem_block;
use crate::verifier::{Purpose, Session};

/// The port ATS serves HTTP on, inside its own namespace (nothing else is there).
pub(super) const ATS_PORT: u16 = 8080;
/// The host of the readiness probe's rule, mapped to the readiness responder's address.
pub(super) const PROBE_HOST: &str = "mralab-ready";

/// Why the runroot could not be written.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConfigError {
    /// A file or folder of the runroot could not be written.
    #[error("writing {what} in {}: {source}", .root.display())]
    Write {
        /// The file or folder.
        what: &'static str,
        /// The runroot.
        root: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A private key form with no PEM label here.
    #[error("Expressway-C's client key is in a form this verifier cannot write")]
    ClientKeyForm,
}

/// One remap rule: a target the requests named.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Target {
    /// The host the MRA request names.
    pub(super) host: String,
    /// Its port.
    pub(super) port: u16,
    /// Discovery with "TLS verify mode" On while the traffic server verifies nothing.
    pub(super) discovery_check: bool,
}

impl Target {
    /// The rule a request for `host:port` made for `purpose` uses under `session`.
    pub(super) fn new(host: &str, port: u16, purpose: Purpose, session: &Session) -> Target {
        Target {
            host: host.to_string(),
            port,
            discovery_check: matches!(purpose, Purpose::Discovery { tls_verify_mode: true })
                && session.expressway.policy() == Policy::Disabled,
        }
    }

    /// The path prefix of the target's rule on Expressway-C's front: `/<token>/`.
    pub(super) fn prefix(&self, session: &Session) -> String {
        let token = crate::mra::token(&session.expressway.domain, &self.host, self.port);
        if self.discovery_check { format!("/discovery-{token}/") } else { format!("/{token}/") }
    }
}

/// The generation of traffic server a runroot is written for: the records each reads differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// ATS 8.1 (Debian 11, OpenSSL 1.1.1): `proxy.config.ssl.client.verify.server 0|1|2`; the
    /// 9.x `.policy` and `.properties` names are unknown to it (and it then verifies nothing).
    V8_1,
    /// ATS 9.2 (Debian 12, OpenSSL 3.0): `.policy` and `.properties`.
    V9_2,
}

impl Generation {
    /// `8.1`, `9.2`.
    pub fn version(self) -> &'static str {
        match self {
            Generation::V8_1 => "8.1",
            Generation::V9_2 => "9.2",
        }
    }
}

/// Where a runroot is: the folder the harness writes (`outside`: a temporary folder, or a
/// container's folder seen through `/proc/<pid>/root`), the same folder as `traffic_server` sees
/// it (`inside`, what the configuration and the [`environment`] name), and the stock
/// configuration copied into it.
#[derive(Debug, Clone)]
pub(super) struct Runroot {
    /// Where the harness writes it.
    pub(super) outside: PathBuf,
    /// Where traffic_server reads it.
    pub(super) inside: PathBuf,
    /// The installed `/etc/trafficserver`, seen from the harness.
    pub(super) stock_etc: PathBuf,
    /// Which traffic server reads it.
    pub(super) generation: Generation,
}

/// An empty file standing for OpenSSL's default CA bundle; see [`environment`].
const NO_DEFAULT_CAS: &str = "no-default-cas.pem";

/// The environment `traffic_server` runs with: its runroot, and OpenSSL's default CA bundle
/// and folder pointed at an empty file and the empty `capath` folder. The client-facing TLS
/// context ATS builds at start (it serves no TLS here) loads OpenSSL's defaults, which cost
/// ~40 ms a start for the machine's ~150 CAs and made the machine's trust part of the run;
/// origin verification reads `trust.pem` and `capath` only, as `records.config` says.
pub(super) fn environment(root: &Path) -> [(&'static str, PathBuf); 3] {
    [
        ("TS_RUNROOT", root.to_path_buf()),
        ("SSL_CERT_FILE", root.join(NO_DEFAULT_CAS)),
        ("SSL_CERT_DIR", root.join("capath")),
    ]
}

/// Writes the runroot for `session`, a rule per target of `targets` and the readiness
/// responder's port.
pub(super) fn write_runroot(
    runroot: &Runroot,
    session: &Session,
    targets: &[Target],
    ready_port: u16,
) -> Result<(), ConfigError> {
    let root = runroot.outside.as_path();
    let io = |what: &'static str, source: io::Error| ConfigError::Write { what, root: root.to_path_buf(), source };
    let etc = root.join("etc");
    if !etc.exists() {
        copy_dir(&runroot.stock_etc, &etc).map_err(|e| io("a copy of /etc/trafficserver", e))?;
    }
    for d in ["log", "run", "cache", "capath"] {
        create_dir(&root.join(d)).map_err(|e| io(d, e))?;
    }
    fs::write(root.join("runroot.yaml"), runroot_yaml(&runroot.inside)).map_err(|e| io("runroot.yaml", e))?;
    fs::write(root.join(NO_DEFAULT_CAS), "").map_err(|e| io(NO_DEFAULT_CAS, e))?;
    fs::write(etc.join("storage.config"), "").map_err(|e| io("storage.config", e))?;

    let trust: String = session.trust.ders().iter().map(|d| pem_block("CERTIFICATE", d)).collect();
    fs::write(root.join("trust.pem"), &trust).map_err(|e| io("trust.pem", e))?;
    if let Some(identity) = &session.client_identity {
        let chain: String = identity.chain.iter().map(|c| pem_block("CERTIFICATE", c)).collect();
        let key = match &identity.key {
            PrivateKeyDer::Pkcs1(k) => pem_block("RSA PRIVATE KEY", k.secret_pkcs1_der()),
            PrivateKeyDer::Sec1(k) => pem_block("EC PRIVATE KEY", k.secret_sec1_der()),
            PrivateKeyDer::Pkcs8(k) => pem_block("PRIVATE KEY", k.secret_pkcs8_der()),
            _ => return Err(ConfigError::ClientKeyForm),
        };
        fs::write(root.join("client.pem"), chain).map_err(|e| io("client.pem", e))?;
        fs::write(root.join("client.key"), key).map_err(|e| io("client.key", e))?;
    }
    let records = records_config(runroot, &session.expressway, trust.is_empty(), session.client_identity.is_some());
    fs::write(etc.join("records.config"), records).map_err(|e| io("records.config", e))?;

    fs::write(etc.join("remap.config"), remap_config(runroot.generation, session, targets, ready_port))
        .map_err(|e| io("remap.config", e))?;
    fs::write(root.join("hosts"), "").map_err(|e| io("hosts", e))?;
    fs::write(root.join("resolv.conf"), "nameserver 127.0.0.1\n").map_err(|e| io("resolv.conf", e))?;
    Ok(())
}

/// `runroot.yaml`: the runroot's own folders, the rest from Debian's layout.
fn runroot_yaml(root: &Path) -> String {
    let r = root.display();
    format!(
        "prefix: {r}\nexec_prefix: /usr\nbindir: /usr/bin\nsbindir: /usr/sbin\nsysconfdir: {r}/etc\n\
         datadir: /usr/share/trafficserver\nincludedir: /usr/include\nlibdir: /usr/lib/trafficserver\n\
         libexecdir: /usr/lib/trafficserver/modules\nlocalstatedir: {r}/run\nruntimedir: {r}/run\n\
         logdir: {r}/log\ncachedir: {r}/cache\n"
    )
}

/// `records.config` for Expressway-C's configuration; `client` when `client.pem` and
/// `client.key` were written. Besides Expressway-C's settings: one thread of each kind, no
/// cache, no access logs, the `ssl.error` debug tag, names from the stub DNS; no crash-log
/// helper (a process per start that cannot run as `#-1` anyway) and no HostDB written to disk
/// (a restart starts from an empty HostDB, whatever the stub DNS answered before).
fn records_config(runroot: &Runroot, expressway: &ExpresswaySpec, trust_is_empty: bool, client: bool) -> String {
    let r = runroot.inside.display();
    let retries = expressway.attempts.max(1) - 1;
    let mut records = String::from(
        "# Generated by mralab's ats verifier for one Expressway-C peer; do not edit.\n\
         CONFIG proxy.config.admin.user_id STRING #-1\n\
         CONFIG proxy.config.crash_log_helper STRING NULL\n\
         CONFIG proxy.config.cache.hostdb.sync_frequency INT 0\n\
         CONFIG proxy.config.exec_thread.autoconfig INT 0\n\
         CONFIG proxy.config.exec_thread.limit INT 1\n\
         CONFIG proxy.config.task_threads INT 1\n\
         CONFIG proxy.config.net.connections_throttle INT 1000\n\
         CONFIG proxy.config.http.cache.http INT 0\n\
         CONFIG proxy.config.reverse_proxy.enabled INT 1\n\
         CONFIG proxy.config.url_remap.remap_required INT 1\n\
         CONFIG proxy.config.log.logging_enabled INT 0\n\
         CONFIG proxy.config.diags.debug.enabled INT 1\n\
         CONFIG proxy.config.diags.debug.tags STRING ssl.error\n\
         CONFIG proxy.config.diags.output.debug STRING L\n\
         CONFIG proxy.config.http.down_server.cache_time INT 60\n\
         CONFIG proxy.config.http.keep_alive_enabled_out INT 0\n\
         CONFIG proxy.config.dns.nameservers STRING 127.0.0.1\n\
         CONFIG proxy.config.ssl.client.TLSv1 INT 0\n\
         CONFIG proxy.config.ssl.client.TLSv1_1 INT 0\n",
    );
    let _ = writeln!(records, "CONFIG proxy.config.http.server_ports STRING {ATS_PORT}:ipv4:ip-in=127.0.0.1");
    match runroot.generation {
        Generation::V9_2 => {
            let _ =
                writeln!(records, "CONFIG proxy.config.ssl.client.verify.server.policy STRING {}", expressway.policy());
            let _ = writeln!(
                records,
                "CONFIG proxy.config.ssl.client.verify.server.properties STRING {}",
                expressway.properties()
            );
        }
        Generation::V8_1 => {
            // 8.1 checks chain and name together: properties other than ALL are refused before
            // a runroot is written (see `unsupported_on`).
            let _ = writeln!(
                records,
                "CONFIG proxy.config.ssl.client.verify.server INT {}",
                verify_server(expressway.policy())
            );
        }
    }
    if trust_is_empty {
        // OpenSSL refuses an empty CA file; an empty folder trusts nothing, as an empty store.
        let _ = writeln!(records, "CONFIG proxy.config.ssl.client.CA.cert.filename STRING NULL");
    } else {
        let _ = writeln!(records, "CONFIG proxy.config.ssl.client.CA.cert.filename STRING {r}/trust.pem");
    }
    let _ = writeln!(records, "CONFIG proxy.config.ssl.client.CA.cert.path STRING {r}/capath");
    let _ = writeln!(records, "CONFIG proxy.config.ssl.client.cipher_suite STRING {}", expressway.ciphers());
    let tls12 = expressway.tls.contains(&TlsVersion::Tls12);
    let tls13 = expressway.tls.contains(&TlsVersion::Tls13);
    let _ = writeln!(records, "CONFIG proxy.config.ssl.client.TLSv1_2 INT {}", u8::from(tls12));
    let _ = writeln!(records, "CONFIG proxy.config.ssl.client.TLSv1_3 INT {}", u8::from(tls13));
    let _ = writeln!(records, "CONFIG proxy.config.http.connect_attempts_max_retries INT {retries}");
    let _ = writeln!(
        records,
        "CONFIG proxy.config.http.connect_attempts_timeout INT {}",
        expressway.connect_attempts_timeout
    );
    // ATS 8.1.10 waits for a never-answering origin's connect this long, not
    // connect_attempts_timeout (observed: with connect_attempts_timeout 2 an attempt took 30 s,
    // this setting's default; with this set to 3 and 6, 3 and 6 s): the scenario's value bounds
    // both, so a partition costs seconds, and the model waits the same.
    let _ = writeln!(
        records,
        "CONFIG proxy.config.http.transaction_no_activity_timeout_out INT {}",
        expressway.connect_attempts_timeout
    );
    let _ = writeln!(records, "CONFIG proxy.config.http.connect_attempts_rr_retries INT {retries}");
    let _ = writeln!(records, "CONFIG proxy.config.hostdb.host_file.path STRING {r}/hosts");
    let _ = writeln!(records, "CONFIG proxy.config.dns.resolv_conf STRING {r}/resolv.conf");
    if client {
        let _ = writeln!(records, "CONFIG proxy.config.ssl.client.cert.path STRING {r}");
        let _ = writeln!(records, "CONFIG proxy.config.ssl.client.cert.filename STRING client.pem");
        let _ = writeln!(records, "CONFIG proxy.config.ssl.client.private_key.path STRING {r}");
        let _ = writeln!(records, "CONFIG proxy.config.ssl.client.private_key.filename STRING client.key");
    }
    records
}

/// ATS 8.1's `proxy.config.ssl.client.verify.server` for a policy: 0 off, 1 enforce, 2 log
/// and go on.
fn verify_server(policy: Policy) -> u8 {
    match policy {
        Policy::Disabled => 0,
        Policy::Enforced => 1,
        Policy::Permissive => 2,
    }
}

/// Why a traffic server of `generation` cannot run this Expressway-C configuration at all, if
/// it cannot: ATS 8.1 has no `.properties`, so SIGNATURE or NAME alone cannot be asked of it.
pub(super) fn unsupported_on(generation: Generation, expressway: &ExpresswaySpec) -> Option<String> {
    match (generation, expressway.properties()) {
        (Generation::V8_1, Properties::All) | (Generation::V9_2, _) => None,
        (Generation::V8_1, properties) => Some(format!(
            "ATS 8.1 verifies chain and name together (proxy.config.ssl.client.verify.server); properties {properties} \
             is a 9.x setting"
        )),
    }
}

/// `remap.config`: the readiness probe's rule, then a rule per target.
fn remap_config(generation: Generation, session: &Session, targets: &[Target], ready_port: u16) -> String {
    let mut remap = String::from("# Generated by mralab's ats verifier; do not edit.\n");
    let _ = writeln!(remap, "map http://{PROBE_HOST}/ http://127.0.0.1:{ready_port}/");
    for target in targets {
        let host = match target.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => target.host.clone(),
        };
        let _ = write!(
            remap,
            "map http://{}:{}{} https://{host}:{}/",
            session.expressway.front_name,
            target.port,
            target.prefix(session),
            target.port
        );
        if target.discovery_check {
            remap.push_str(match generation {
                Generation::V9_2 => {
                    " @plugin=conf_remap.so @pparam=proxy.config.ssl.client.verify.server.policy=ENFORCED \
                     @pparam=proxy.config.ssl.client.verify.server.properties=ALL"
                }
                Generation::V8_1 => " @plugin=conf_remap.so @pparam=proxy.config.ssl.client.verify.server=1",
            });
        }
        remap.push('\n');
    }
    remap
}

/// Makes the folder `path` unless it exists; never its parents, so that a runroot removed
/// underneath a start (by `harness::cleanup` on a signal) is not made again and left behind.
fn create_dir(path: &Path) -> io::Result<()> {
    match fs::create_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Copies the folder `from` to `to` (whose parent exists), recursively.
fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
