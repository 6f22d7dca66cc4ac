//! The scenario file format: `scenarios/<namespace>/<kebab-id>.toml`, one scenario per file.
//!
//! ```toml
//! title = "X14.0.7 -> X14.2: 6972 fails on the self-signed CallManager-ECDSA"
//! description = """(Markdown: what a TAC engineer learns, the chain drawn as text)"""
//! validation_time = "2022-07-11T16:55:26Z"
//! topology = "steven-lab"                 # a built-in name, or inline [certs."id"] tables
//! diagnosis = [{ server = "cucm.steven.lab", port = 6972, class = "self-signed" }]
//!
//! [fleet.nodes.cucm]                      # the fleet format (harness::fleet)
//! role = "cucm-publisher"
//! fqdn = "cucm.steven.lab"
//! ip = "10.48.36.215"
//!
//! [expressway]                            # harness::expressway::ExpresswaySpec
//! version = "X14.0.7"
//! trust = ["steven-DC-CA"]
//! discovery = { publisher = "cucm.steven.lab" }
//!
//! [[steps]]
//! discover = { expect = "works" }
//! [[steps]]
//! upgrade = { to = "X14.2" }
//! [[steps]]
//! request = { node = "cucm", port = 6972, path = "/SPDefault.cnf.xml", expect = { status = 502 } }
//! [[steps]]
//! login = { expect = "fails" }
//! ```
//!
//! Every `discover`, `login` and `request` step states its expected outcome; a file without one
//! is refused. Unknown fields are refused with the file, line, column and a suggestion.

use serde::Deserialize;
use time::OffsetDateTime;

use crate::diagnose::DiagnosisClass;
use crate::expressway::{ExpresswaySpec, Policy, Properties, Version};
use crate::fleet::FleetSpec;
use crate::pki::{CertSpec, San, TimeSpec};
use crate::verifier::Family;

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// One line: what happens.
    pub title: String,
    /// Markdown for people: what to learn, the chain drawn as text.
    pub description: String,
    /// The pinned validation time (RFC 3339); certificates' validity is relative to it.
    #[serde(deserialize_with = "rfc3339")]
    pub validation_time: OffsetDateTime,
    /// The PKI by built-in name (`steven-lab`, `vngtp:3`); or write `[certs.*]` tables inline.
    #[serde(default)]
    pub topology: Option<String>,
    /// An inline topology: certificates by id, as in a topology file.
    #[serde(default)]
    pub certs: Option<std::collections::BTreeMap<String, CertSpec>>,
    /// The fleet.
    pub fleet: FleetSpec,
    /// Expressway-C's configuration at the start.
    pub expressway: ExpresswaySpec,
    /// The diagnosis `cargo xtask diagnose` must give for this scenario's log.
    #[serde(default)]
    pub diagnosis: Vec<Diagnosis>,
    /// The steps, run in order.
    pub steps: Vec<Step>,
    /// `pinned` when the outcome depends on the validation time to the second (a validity
    /// boundary): verifiers that read the real clock cannot run it ([`Clock`]).
    #[serde(default)]
    pub clock: Clock,
    /// `proxy.config.http.connect_attempts_timeout` in seconds: how long the traffic server
    /// waits for a node to answer a connection before the attempt fails (a partitioned node).
    /// The ats verifiers write it into records.config; the model waits it on the log clock.
    /// ATS's default, 30, when not set; live-cluster scenarios set a few seconds.
    #[serde(default)]
    pub connect_attempts_timeout: Option<u32>,
}

/// Which clocks a scenario can be validated at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Clock {
    /// Validity is days from the validation time: verifiers that read the real clock run it with
    /// the PKI built around now.
    #[default]
    Any,
    /// Only at the validation time itself: the PKI is built around it for every verifier, and a
    /// verifier that cannot be told the time (the real traffic server) does not run it.
    Pinned,
}

fn rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let s = String::deserialize(d)?;
    OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| serde::de::Error::custom(format!("'{s}' is not an RFC 3339 time (2022-07-11T16:55:26Z)")))
}

/// A server and the class of failure a diagnosis must find for it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diagnosis {
    /// Name or address as the traffic server logs it.
    pub server: String,
    /// The port.
    pub port: u16,
    /// The class.
    pub class: DiagnosisClass,
}

/// One step.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Expressway-C discovers the cluster from the publisher address typed in.
    Discover(DiscoverStep),
    /// Discovery again, after a change on CUCM.
    RefreshDiscovery(DiscoverStep),
    /// A Jabber client logs in over MRA.
    Login(LoginStep),
    /// One request to one node.
    Request(RequestStep),
    /// Expressway-C is upgraded.
    Upgrade(UpgradeStep),
    /// `xConfiguration Ciphers`.
    SetCiphers(SetCiphersStep),
    /// `xConfiguration EdgeConfigServer VerifyOriginServer`.
    SetVerifyOrigin(SetVerifyOriginStep),
    /// ATS policy override (PERMISSIVE / DISABLED labs).
    SetPolicy(SetPolicyStep),
    /// Maintenance > Security > Trusted CA certificate: upload.
    TrustStoreAdd(TrustStoreStep),
    /// Maintenance > Security > Trusted CA certificate: delete.
    TrustStoreRemove(TrustStoreStep),
    /// CUCM System > Server: change what a node is advertised as.
    SetSystemServer(SetSystemServerStep),
    /// CUCM re-issues a certificate.
    Reissue(ReissueStep),
    /// A node's services stop (a crash, a restart): its address stays, its ports refuse.
    NodeDown(NodeStep),
    /// A stopped node's services start again.
    NodeUp(NodeStep),
    /// The network drops every packet to a node: connections to it are never answered.
    Partition(NodeStep),
    /// Packets reach a partitioned node again.
    Heal(NodeStep),
}

impl Step {
    /// The kebab-case name of the step kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Discover(_) => "discover",
            Step::RefreshDiscovery(_) => "refresh-discovery",
            Step::Login(_) => "login",
            Step::Request(_) => "request",
            Step::Upgrade(_) => "upgrade",
            Step::SetCiphers(_) => "set-ciphers",
            Step::SetVerifyOrigin(_) => "set-verify-origin",
            Step::SetPolicy(_) => "set-policy",
            Step::TrustStoreAdd(_) => "trust-store-add",
            Step::TrustStoreRemove(_) => "trust-store-remove",
            Step::SetSystemServer(_) => "set-system-server",
            Step::Reissue(_) => "reissue",
            Step::NodeDown(_) => "node-down",
            Step::NodeUp(_) => "node-up",
            Step::Partition(_) => "partition",
            Step::Heal(_) => "heal",
        }
    }
}

/// Works or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Works {
    /// It works.
    Works,
    /// It fails.
    Fails,
}

/// `discover` / `refresh-discovery`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverStep {
    /// `works` or `fails`.
    pub expect: Works,
    /// The names the publisher must advertise, in order, when it works.
    #[serde(default)]
    pub advertised: Option<Vec<String>>,
    /// Differences for one verifier family.
    #[serde(default)]
    pub ats: Option<Works>,
    /// What the discovery request itself must show, written as a request step's `expect`
    /// (status, reason phrase, attempts, ...).
    #[serde(default)]
    pub response: Option<RequestExpect>,
}

/// A login's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum LoginVerdict {
    /// Every required service answered 200 and no node failed.
    Works,
    /// Every required service answered on at least one node, but some node failed.
    Degraded,
    /// A required service answered on no node.
    Fails,
}

/// `login`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginStep {
    /// The expected verdict.
    pub expect: LoginVerdict,
    /// One Expressway-C peer; every peer when absent.
    #[serde(default)]
    pub via: Option<String>,
    /// Per-peer expectations that differ from `expect`.
    #[serde(default)]
    pub per_peer: std::collections::BTreeMap<String, LoginVerdict>,
    /// The verdict the real traffic server gives when it differs.
    #[serde(default)]
    pub ats: Option<LoginVerdict>,
}

/// Which check failed, in a person's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum CheckExpect {
    /// Nothing failed.
    None,
    /// The chain.
    Chain,
    /// The name.
    Name,
    /// The handshake, otherwise.
    Handshake,
    /// The name lookup (no DNS entry: nothing dialled).
    Resolve,
    /// The connection.
    Connect,
}

/// What a request must give.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestExpect {
    /// The status the MRA client gets.
    #[serde(default)]
    pub status: Option<u16>,
    /// The reason phrase of its status line, exactly (`Connection refused`, or empty).
    #[serde(default)]
    pub reason: Option<String>,
    /// Which check fails.
    #[serde(default)]
    pub failed: Option<CheckExpect>,
    /// The OpenSSL error code of the chain failure.
    #[serde(default)]
    pub code: Option<i32>,
    /// Its depth.
    #[serde(default)]
    pub depth: Option<usize>,
    /// The certificate the node serves (its CUCM name, `tomcat-ECDSA`).
    #[serde(default)]
    pub served: Option<String>,
    /// How many connections reached the node (handshake attempts): 3 for a first failure on
    /// Expressway's generation, 1 once the origin is marked down, 4 on stock ATS 9.2.
    #[serde(default)]
    pub attempts: Option<u32>,
    /// How many WARNING lines the traffic server logged for the request (its verify callback).
    #[serde(default)]
    pub warnings: Option<usize>,
    /// How many ERROR lines (`SSL connection failed`; Expressway's generation only).
    #[serde(default)]
    pub errors: Option<usize>,
    /// The verification errors the WARNING lines report, in order, each as `<error text> at
    /// depth <n>`: PERMISSIVE's whole sequence (`unable to get local issuer certificate at depth
    /// 0`, then `unable to verify the first certificate at depth 0`), or ENFORCED's one.
    #[serde(default)]
    pub sequence: Option<Vec<String>>,
    /// The TLS alert the node received from the verifier, as Wireshark names it (`Unknown CA`),
    /// or `none`.
    #[serde(default)]
    pub alert: Option<String>,
    /// Text the failure's description holds (`tlsv1 alert unknown ca`): what the traffic server
    /// says went wrong, beyond which check it was.
    #[serde(default)]
    pub failure_text: Option<String>,
    /// The TLS version of the request's last completed handshake (`TLSv1.3`, `TLSv1.2`): what
    /// the node negotiated, and what the verifier reports where it reports one.
    #[serde(default)]
    pub tls: Option<String>,
    /// Where Expressway's generation differs from the rest (rarely needed: the base is written
    /// for it).
    #[serde(default)]
    pub builtin: Option<Box<RequestExpect>>,
    /// Where stock ATS 9.2 (the `ats-9.2` profile, `ats`, `ats:9.2`) differs.
    #[serde(default)]
    pub ats: Option<Box<RequestExpect>>,
}

impl RequestExpect {
    /// Whether it states anything at all.
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.reason.is_none()
            && self.failed.is_none()
            && self.code.is_none()
            && self.depth.is_none()
            && self.served.is_none()
            && self.attempts.is_none()
            && self.warnings.is_none()
            && self.errors.is_none()
            && self.sequence.is_none()
            && self.alert.is_none()
            && self.failure_text.is_none()
            && self.tls.is_none()
    }

    /// This expectation with one family's differences applied.
    pub fn for_family(&self, family: Family) -> RequestExpect {
        let over = match family {
            Family::Expressway => self.builtin.as_deref(),
            Family::Ats => self.ats.as_deref(),
            Family::Other => None,
        };
        let mut out = self.clone();
        out.builtin = None;
        out.ats = None;
        if let Some(over) = over {
            out.status = over.status.or(out.status);
            out.reason = over.reason.clone().or(out.reason);
            out.failed = over.failed.or(out.failed);
            out.code = over.code.or(out.code);
            out.depth = over.depth.or(out.depth);
            out.served = over.served.clone().or(out.served);
            out.attempts = over.attempts.or(out.attempts);
            out.warnings = over.warnings.or(out.warnings);
            out.errors = over.errors.or(out.errors);
            out.sequence = over.sequence.clone().or(out.sequence);
            out.alert = over.alert.clone().or(out.alert);
            out.failure_text = over.failure_text.clone().or(out.failure_text);
            out.tls = over.tls.clone().or(out.tls);
        }
        out
    }
}

/// How a request names its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum By {
    /// The FQDN.
    #[default]
    Fqdn,
    /// The modelled IP.
    Ip,
    /// What System > Server advertises now.
    Advertised,
}

/// `request`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestStep {
    /// The node (fleet name); or `host` names it directly.
    #[serde(default)]
    pub node: Option<String>,
    /// How `node` is named in the request.
    #[serde(default)]
    pub by: By,
    /// The host as the request names it (FQDN or IP); overrides `node`/`by`.
    #[serde(default)]
    pub host: Option<String>,
    /// The origin port.
    pub port: u16,
    /// The method.
    #[serde(default = "get")]
    pub method: String,
    /// Path and query.
    pub path: String,
    /// One peer; every peer when absent.
    #[serde(default)]
    pub via: Option<String>,
    /// The expected outcome.
    pub expect: RequestExpect,
}

fn get() -> String {
    "GET".into()
}

/// `upgrade`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeStep {
    /// The new version.
    pub to: Version,
}

/// `set-ciphers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetCiphersStep {
    /// The OpenSSL cipher string; `"default"` restores the version's default.
    pub ciphers: String,
}

/// On or Off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// `set-verify-origin`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetVerifyOriginStep {
    /// `On` or `Off`.
    pub value: OnOff,
}

/// `set-policy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPolicyStep {
    /// ENFORCED, PERMISSIVE or DISABLED (lowercase in files).
    pub policy: Policy,
    /// Properties, when they change too.
    #[serde(default)]
    pub properties: Option<Properties>,
}

/// Accepted or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Acceptance {
    /// Accepted.
    Accepted,
    /// Refused.
    Refused,
}

/// `trust-store-add` / `trust-store-remove`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustStoreStep {
    /// Certificate ids, uploaded or deleted in order.
    pub certs: Vec<String>,
    /// One peer; every peer when absent.
    #[serde(default)]
    pub peer: Option<String>,
    /// For uploads: `accepted` (the default) or `refused`.
    #[serde(default)]
    pub expect: Option<Acceptance>,
}

/// `set-system-server`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSystemServerStep {
    /// The node.
    pub node: String,
    /// The new name (FQDN or IP).
    pub name: String,
}

/// `node-down`, `node-up`, `partition`, `heal`: what happens to one node of a live cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeStep {
    /// The node.
    pub node: String,
}

/// `reissue`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReissueStep {
    /// The certificate id.
    pub cert: String,
    /// SANs to add.
    #[serde(default)]
    pub add_san: Vec<San>,
    /// New start of validity.
    #[serde(default)]
    pub not_before: Option<TimeSpec>,
    /// New end of validity.
    #[serde(default)]
    pub not_after: Option<TimeSpec>,
    /// A new issuer (a CA-signed re-issue of a self-signed certificate).
    #[serde(default)]
    pub issuer: Option<String>,
}
