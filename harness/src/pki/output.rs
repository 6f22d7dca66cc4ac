//! What a built PKI looks like to people and to other tools: the tree printed by
//! `cargo xtask pki`, and the directory of PEM/DER files that `openssl`, `curl` and a real
//! Apache Traffic Server read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use time::OffsetDateTime;

use super::build::{BuiltCert, Pki};
use super::spec::{AkiSpec, Eku, San, TimeSpec};
use super::{PkiError, Role};

/// A time shown relative to the validation time: `-30d`, `+365d`, `+2h`, `-90s`.
pub fn relative(at: OffsetDateTime, validation_time: OffsetDateTime) -> String {
    TimeSpec::Relative(at - validation_time).to_string()
}

impl BuiltCert {
    /// `valid -30d .. +365d` relative to `validation_time`.
    pub fn validity(&self, validation_time: OffsetDateTime) -> String {
        format!("valid {} .. {}", relative(self.not_before, validation_time), relative(self.not_after, validation_time))
    }

    /// The SANs as `dns:a, ip:b`, or `none`.
    pub fn san_list(&self) -> String {
        if self.spec.san.is_empty() {
            "none".into()
        } else {
            self.spec.san.iter().map(San::to_string).collect::<Vec<_>>().join(", ")
        }
    }
}

impl Pki {
    /// What is unusual about a certificate, in a person's words; empty when nothing is.
    pub fn oddities(&self, cert: &BuiltCert) -> Vec<String> {
        let vt = self.validation_time();
        let mut odd = Vec::new();
        let leaf = cert.role == Role::Leaf;
        if leaf && cert.is_self_signed() {
            odd.push("self-signed leaf".to_string());
        }
        match (cert.spec.ca, leaf) {
            (Some(true), true) => odd.push("CA:TRUE on a leaf".into()),
            (Some(false), false) => odd.push("CA:FALSE on a CA".into()),
            _ => {}
        }
        // As OpenSSL's X509_cmp_time counts it: expired from notAfter itself on, valid from
        // notBefore itself on.
        if cert.not_after == vt {
            odd.push("expired (notAfter is the validation time itself)".into());
        } else if cert.not_after < vt {
            odd.push(format!(
                "expired ({} before validation time)",
                relative(vt, cert.not_after).trim_start_matches('+')
            ));
        }
        if cert.not_before > vt {
            odd.push(format!("not yet valid (starts {})", relative(cert.not_before, vt)));
        }
        if leaf && cert.spec.san.is_empty() {
            odd.push("no SAN: CN only".into());
        }
        for san in &cert.spec.san {
            if let San::Dns(name) = san {
                if name.parse::<std::net::IpAddr>().is_ok() {
                    odd.push(format!("dns:{name} is an IP address written as a DNS name"));
                }
                if name.starts_with("*.") {
                    odd.push(format!("wildcard SAN {name}"));
                }
            }
        }
        if let Some(ekus) = &cert.spec.eku
            && leaf
            && !ekus.contains(&Eku::ServerAuth)
        {
            odd.push(if ekus.is_empty() { "no EKU extension".into() } else { "EKU without serverAuth".into() });
        }
        if !cert.spec.ski {
            odd.push("no SKI".into());
        }
        match cert.spec.aki {
            AkiSpec::Absent if !cert.is_self_signed() => odd.push("no AKI".into()),
            AkiSpec::Mismatched => odd.push("AKI matches no certificate".into()),
            _ => {}
        }
        for other in self.certs() {
            if other.id == cert.id {
                continue;
            }
            if other.spec.subject == cert.spec.subject && !leaf && other.role != Role::Leaf {
                odd.push(format!("same subject as CA {} (a re-issued CA?)", other.id));
            } else if let (Some(a), Some(b)) = (cert.common_name(), other.common_name())
                && a == b
            {
                odd.push(format!("same CN as {}", other.id));
            }
        }
        if leaf {
            odd.extend(self.sent_oddities(cert));
        }
        odd
    }

    fn sent_oddities(&self, cert: &BuiltCert) -> Vec<String> {
        let topology = self.topology();
        if cert.spec.sends.is_none() {
            return Vec::new();
        }
        let sends = topology.sends(&cert.id);
        let path = self.path_to_top(&cert.id);
        let mut odd = Vec::new();
        if sends.first() != Some(&cert.id) {
            odd.push("sends another certificate first".to_string());
        }
        let intermediates: Vec<&String> =
            path.iter().skip(1).filter(|id| topology.role(id) == Some(Role::Intermediate)).collect();
        if sends.len() == 1 && !intermediates.is_empty() {
            odd.push("sends the leaf only".into());
        } else {
            for missing in intermediates.iter().filter(|i| !sends.contains(i)) {
                odd.push(format!("does not send intermediate {missing}"));
            }
        }
        for sent in &sends {
            if !path.contains(sent) {
                odd.push(format!("also sends unrelated {sent}"));
            } else if topology.role(sent) == Some(Role::Root) && sent != &cert.id {
                odd.push(format!("sends its root {sent}"));
            }
        }
        let positions: Vec<usize> = sends.iter().filter_map(|s| path.iter().position(|p| p == s)).collect();
        if positions.windows(2).any(|w| w[0] > w[1]) {
            odd.push("sends its chain out of order".into());
        }
        odd
    }

    /// The topology as a tree: each certificate under its issuer, with subject, key type,
    /// SANs, validity and what is odd about it.
    pub fn tree(&self) -> String {
        let mut children: BTreeMap<Option<&str>, Vec<&BuiltCert>> = BTreeMap::new();
        for cert in self.certs() {
            children.entry(cert.issuer.as_deref()).or_default().push(cert);
        }
        let mut out = String::new();
        if let Some(description) = &self.topology().spec().description {
            let _ = writeln!(out, "{description}");
        }
        let _ = writeln!(out, "validation time = T; validity shown relative to T");
        for top in children.get(&None).cloned().unwrap_or_default() {
            self.tree_node(&mut out, top, &children, "", "");
        }
        out
    }

    fn tree_node(
        &self,
        out: &mut String,
        cert: &BuiltCert,
        children: &BTreeMap<Option<&str>, Vec<&BuiltCert>>,
        first: &str,
        rest: &str,
    ) {
        let vt = self.validation_time();
        let kind = if cert.role == Role::Leaf && cert.is_self_signed() {
            "self-signed leaf".to_string()
        } else {
            cert.role.to_string()
        };
        let _ = writeln!(out, "{first}{} ({kind}, {})", cert.id, cert.key_type());
        let _ = writeln!(out, "{rest}    subject  {}", cert.spec.subject);
        if cert.role == Role::Leaf || !cert.spec.san.is_empty() {
            let _ = writeln!(out, "{rest}    SAN      {}", cert.san_list());
        }
        let _ = writeln!(out, "{rest}    {}", cert.validity(vt));
        if cert.role == Role::Leaf {
            let sends = self.topology().sends(&cert.id);
            let _ = writeln!(out, "{rest}    sends    {}", sends.join(" + "));
        }
        for odd in self.oddities(cert) {
            let _ = writeln!(out, "{rest}    ! {odd}");
        }
        let kids = children.get(&Some(cert.id.as_str())).cloned().unwrap_or_default();
        for (i, kid) in kids.iter().enumerate() {
            let last = i + 1 == kids.len();
            let (f, r) = if last { ("└── ", "    ") } else { ("├── ", "│   ") };
            self.tree_node(out, kid, children, &format!("{rest}{f}"), &format!("{rest}{r}"));
        }
    }

    /// Writes every certificate and key (PEM and DER), the chain each leaf's server sends, and
    /// trust-store bundles into `dir`:
    ///
    /// - `certs/<id>.pem`, `certs/<id>.der`, `certs/<id>.key.pem`, `certs/<id>.key.der` (PKCS#8;
    ///   ids with `/` make folders);
    /// - `chains/<id>.pem`: what the server holding that leaf sends, in order;
    /// - `trust/roots.pem`: every root; `trust/cas.pem`: every root and intermediate;
    /// - `tree.txt`: [`Pki::tree`].
    ///
    /// Private keys are written mode 0600 (and an existing key file is narrowed to it), the rest
    /// with the process's default mode.
    pub fn write_dir(&self, dir: &Path) -> Result<(), PkiError> {
        let write_mode = |path: &Path, bytes: &[u8], mode: Option<u32>| -> Result<(), PkiError> {
            use std::io::Write as _;
            use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
            let io = |source| PkiError::Io { path: path.display().to_string(), source };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            if let Some(mode) = mode {
                options.mode(mode);
            }
            let mut file = options.open(path).map_err(io)?;
            if let Some(mode) = mode {
                file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io)?;
            }
            file.write_all(bytes).map_err(io)
        };
        let write = |path: &Path, bytes: &[u8]| write_mode(path, bytes, None);
        let write_key = |path: &Path, bytes: &[u8]| write_mode(path, bytes, Some(0o600));
        let mut roots = String::new();
        let mut cas = String::new();
        for cert in self.certs() {
            write(&dir.join("certs").join(format!("{}.pem", cert.id)), cert.pem().as_bytes())?;
            write(&dir.join("certs").join(format!("{}.der", cert.id)), &cert.der)?;
            write_key(&dir.join("certs").join(format!("{}.key.pem", cert.id)), cert.key_pem().as_bytes())?;
            write_key(&dir.join("certs").join(format!("{}.key.der", cert.id)), &cert.key_der)?;
            match cert.role {
                Role::Root => {
                    roots.push_str(&cert.pem());
                    cas.push_str(&cert.pem());
                }
                Role::Intermediate => cas.push_str(&cert.pem()),
                Role::Leaf => {
                    let chain: String = self
                        .topology()
                        .sends(&cert.id)
                        .iter()
                        .filter_map(|id| self.cert(id).ok())
                        .map(BuiltCert::pem)
                        .collect();
                    write(&dir.join("chains").join(format!("{}.pem", cert.id)), chain.as_bytes())?;
                }
            }
        }
        write(&dir.join("trust").join("roots.pem"), roots.as_bytes())?;
        write(&dir.join("trust").join("cas.pem"), cas.as_bytes())?;
        write(&dir.join("tree.txt"), self.tree().as_bytes())
    }
}
