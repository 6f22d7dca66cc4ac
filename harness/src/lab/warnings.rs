//! What `lab check` warns of before its verdict, and what `lab reissue` notes: things a trainee
//! did that the lab applies (or ignores) without an error, but that cannot do what was meant. A
//! trust-store file where no peer reads it, an IP SAN the traffic server never matches. (The
//! cipher string's unknown words are warned of where `expressway.conf` is read, in [`super::conf`].)
//! Each is a line of text; [`super::server::LabServer`] gathers them into the reload report.

use std::fs;
use std::net::IpAddr;

use crate::fleet::ResolvedFleet;
use crate::pki::{Pki, San};

use super::workspace::Workspace;

/// Entries of `trust-store/` that no peer reads: in a cluster, files put directly in
/// `trust-store/` (each peer reads only `trust-store/<peer>/`) and folders named after no peer;
/// on a single peer, folders (its trust store is the files directly in `trust-store/`).
/// Hidden entries are skipped, as the trust-store reader skips them.
pub(super) fn trust_store(workspace: &Workspace, peers: &[String], clustered: bool) -> Vec<String> {
    let Ok(entries) = fs::read_dir(workspace.dir.join("trust-store")) else { return Vec::new() };
    let mut entries: Vec<(String, bool)> = entries
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path().is_dir()))
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    entries.sort();
    let folders = peers.iter().map(|p| format!("trust-store/{p}/")).collect::<Vec<_>>().join(" or ");
    let mut out = Vec::new();
    for (name, dir) in entries {
        let shown = crate::source::printable(&name);
        match (clustered, dir) {
            (true, false) => out.push(format!(
                "trust-store/{shown} is ignored: this Expressway-C is a cluster ({}) and each peer reads \
                 only its own folder; put it in {folders} (every peer that needs it)",
                peers.join(", ")
            )),
            (true, true) if !peers.contains(&name) => out.push(format!(
                "trust-store/{shown}/ is ignored: no peer is called '{shown}' (peers: {})",
                peers.join(", ")
            )),
            (false, true) => out.push(format!(
                "trust-store/{shown}/ is ignored: this Expressway-C is one peer, whose trust store is \
                 the files directly in trust-store/"
            )),
            _ => {}
        }
    }
    out
}

/// Why an IP SAN does not help, for `address`: the words `check` and `reissue` share.
fn ip_san_reason(address: IpAddr) -> String {
    format!(
        "Expressway-C's traffic server does not match IP SANs: it checks the address it connects to \
         ({address}) against the DNS SANs and the CN only. A DNS SAN holding the address \
         (`--san dns:{address}`) or advertising the FQDN (cucm-system-server.conf) is what works"
    )
}

/// `lab reissue`'s note on each IP SAN it was asked to add, if any.
pub(super) fn ip_san_notes(sans: &[San]) -> Vec<String> {
    sans.iter()
        .filter_map(|san| match san {
            San::Ip(address) => Some(format!("note: {san} is an IP SAN. {}", ip_san_reason(*address))),
            San::Dns(_) => None,
        })
        .collect()
}

/// The certificates a discovered target reached by an address holds that address in an IP SAN
/// only: the name check fails all the same. `targets` are (host as advertised, port); one line
/// per address, naming the certificate files.
pub(super) fn ip_sans(pki: &Pki, fleet: &ResolvedFleet, targets: &[(String, u16)]) -> Vec<String> {
    let mut files: Vec<(IpAddr, Vec<String>)> = Vec::new();
    for (host, port) in targets {
        let Ok(address) = host.parse::<IpAddr>() else { continue };
        let Some(node) = fleet.find_by_host(host) else { continue };
        let Some(listener) = node.ports.iter().find(|p| p.port == *port) else { continue };
        for id in [&listener.rsa, &listener.ecdsa].into_iter().flatten() {
            let Ok(cert) = pki.cert(id) else { continue };
            let sans = &cert.spec.san;
            if !sans.contains(&San::Ip(address)) || sans.contains(&San::Dns(host.clone())) {
                continue;
            }
            let file = match cert.identity() {
                Some((node, kind)) => format!("certs/{node}/{}.pem", kind.name()),
                None => id.clone(),
            };
            match files.iter_mut().find(|(a, _)| *a == address) {
                Some((_, names)) if !names.contains(&file) => names.push(file),
                Some(_) => {}
                None => files.push((address, vec![file])),
            }
        }
    }
    files
        .into_iter()
        .map(|(address, names)| {
            let verb = if names.len() == 1 { "holds" } else { "hold" };
            format!("{} {verb} ip:{address}, which does not count. {}", names.join(", "), ip_san_reason(address))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(files: &[&str], dirs: &[&str]) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let trust = dir.path().join("trust-store");
        fs::create_dir_all(&trust).expect("trust-store");
        for d in dirs {
            fs::create_dir_all(trust.join(d)).expect("dir");
        }
        for f in files {
            fs::write(trust.join(f), "pem").expect("file");
        }
        let ws = Workspace { dir: dir.path().to_path_buf() };
        (dir, ws)
    }

    #[test]
    fn a_file_beside_the_peer_folders_of_a_cluster_is_named_as_ignored() {
        let peers = ["vcsc1".to_string(), "vcsc2".to_string()];
        let (_dir, ws) = workspace(&["lab-CA.pem", ".hidden"], &["vcsc1", "vcsc2", "vcsc3"]);
        let warnings = trust_store(&ws, &peers, true);
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(
            warnings[0].starts_with("trust-store/lab-CA.pem is ignored: this Expressway-C is a cluster (vcsc1, vcsc2)")
        );
        assert!(warnings[0].contains("put it in trust-store/vcsc1/ or trust-store/vcsc2/"), "{}", warnings[0]);
        assert_eq!(warnings[1], "trust-store/vcsc3/ is ignored: no peer is called 'vcsc3' (peers: vcsc1, vcsc2)");
    }

    #[test]
    fn a_folder_in_the_trust_store_of_one_peer_is_named_as_ignored() {
        let (_dir, ws) = workspace(&["lab-CA.pem"], &["vcsc"]);
        let warnings = trust_store(&ws, &["vcsc".to_string()], false);
        assert_eq!(
            warnings,
            ["trust-store/vcsc/ is ignored: this Expressway-C is one peer, whose trust store is the files \
              directly in trust-store/"]
        );
    }

    #[test]
    fn reissue_notes_an_ip_san_and_says_what_works() {
        let sans: Vec<San> =
            ["ip:10.48.36.215", "dns:cucm.steven.lab"].iter().map(|s| s.parse().expect("san")).collect();
        let notes = ip_san_notes(&sans);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with(
                "note: ip:10.48.36.215 is an IP SAN. Expressway-C's traffic server does not match IP SANs"
            )
        );
        assert!(
            notes[0].contains("`--san dns:10.48.36.215`") && notes[0].contains("advertising the FQDN"),
            "{}",
            notes[0]
        );
    }
}
