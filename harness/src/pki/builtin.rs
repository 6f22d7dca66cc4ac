//! Ready-made topologies, usable by name from scenario files and `cargo xtask pki`.
//!
//! - `steven-lab`: the seed's lab (SPEC.md), from `harness/topologies/steven-lab.toml`;
//! - `cucm-default`: a CUCM as installed, all self-signed, tomcat and CallManager sharing a CN;
//! - `vngtp` or `vngtp:N`: root `vngtp-ACTIVE-DIR-CA` → intermediate-N → … →
//!   intermediate-1 → `cucm.vngtp.lab`, as in the seed's illustration (N = 2 by default);
//! - `fleet:N`: N CUCM nodes, each with CA-signed RSA and self-signed ECDSA tomcat and
//!   CallManager certificates (benchmarks and large fleets).

use std::fmt::Write as _;

use super::{PkiError, Topology};
use crate::source::{Source, did_you_mean};

/// The names `topology(..)` knows (parameterised ones shown with their parameter).
pub const NAMES: [&str; 4] = ["steven-lab", "cucm-default", "vngtp[:N]", "fleet:N"];

/// The TOML text of a built-in topology, named `built-in:<name>` in messages.
pub fn source(name: &str) -> Result<Source, PkiError> {
    let text = match name.split_once(':') {
        None if name == "steven-lab" => include_str!("../../topologies/steven-lab.toml").to_string(),
        None if name == "cucm-default" => include_str!("../../topologies/cucm-default.toml").to_string(),
        None if name == "vngtp" => vngtp(2),
        Some(("vngtp", n)) => vngtp(parse_count(name, n, 1, 32)?),
        Some(("fleet", n)) => fleet(parse_count(name, n, 1, 1000)?),
        _ => {
            return Err(PkiError::UnknownTopology {
                name: name.to_string(),
                suggestion: did_you_mean(name, ["steven-lab", "cucm-default", "vngtp", "fleet:50"]),
            });
        }
    };
    Ok(Source::new(format!("built-in:{name}"), text))
}

/// A built-in topology, checked.
pub fn topology(name: &str) -> Result<Topology, PkiError> {
    Topology::from_toml(&source(name)?)
}

fn parse_count(name: &str, n: &str, min: usize, max: usize) -> Result<usize, PkiError> {
    n.parse::<usize>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| PkiError::UnknownTopology {
        name: name.to_string(),
        suggestion: format!(" (the count must be a number from {min} to {max})"),
    })
}

const VNGTP_LEAF_SUBJECT: &str =
    r#"{ C = "BE", ST = "Flamish-Brabant", L = "Diegem", O = "Cisco", OU = "TAC", CN = "cucm.vngtp.lab" }"#;

fn vngtp(n: usize) -> String {
    let mut t = format!(
        "description = \"vngtp:{n}: root vngtp-ACTIVE-DIR-CA, {n} intermediate(s), CUCM cucm.vngtp.lab signed by vngtp-intermediate-CA-1\"\n\n\
         [certs.vngtp-ACTIVE-DIR-CA]\nkey = \"rsa-2048\"\nsubject = {{ DC = [\"vngtp\"], CN = \"vngtp-ACTIVE-DIR-CA\" }}\n\
         not_before = \"-1000d\"\nnot_after = \"+3000d\"\n"
    );
    for i in (1..=n).rev() {
        let issuer =
            if i == n { "vngtp-ACTIVE-DIR-CA".to_string() } else { format!("vngtp-intermediate-CA-{}", i + 1) };
        let _ = write!(
            t,
            "\n[certs.vngtp-intermediate-CA-{i}]\nissuer = \"{issuer}\"\nkey = \"rsa-2048\"\n\
             subject = {{ DC = [\"vngtp\"], CN = \"vngtp-intermediate-CA-{i}\" }}\nnot_before = \"-900d\"\nnot_after = \"+2000d\"\n"
        );
    }
    for (kind, key) in [("tomcat", "rsa-2048"), ("CallManager", "rsa-2048")] {
        let _ = write!(
            t,
            "\n[certs.\"cucm/{kind}\"]\nissuer = \"vngtp-intermediate-CA-1\"\nkey = \"{key}\"\n\
             subject = {VNGTP_LEAF_SUBJECT}\nsan = [\"dns:cucm.vngtp.lab\"]\n"
        );
    }
    let _ = write!(
        t,
        "\n[certs.\"vcsc/expressway\"]\nissuer = \"vngtp-intermediate-CA-1\"\nkey = \"rsa-2048\"\n\
         subject = {{ O = \"Cisco\", CN = \"vcsc.vngtp.lab\" }}\nsan = [\"dns:vcsc.vngtp.lab\"]\n"
    );
    t
}

fn fleet(n: usize) -> String {
    let mut t = format!(
        "description = \"fleet:{n}: {n} CUCM nodes under one root; CA-signed RSA, self-signed ECDSA\"\n\n\
         [certs.fleet-CA]\nkey = \"rsa-2048\"\nsubject = {{ O = \"mralab\", CN = \"fleet-CA\" }}\n\
         not_before = \"-1000d\"\nnot_after = \"+1000d\"\n"
    );
    for i in 1..=n {
        let node = format!("cucm-{i:02}");
        for (kind, key, issuer, cn) in [
            ("tomcat", "rsa-2048", "issuer = \"fleet-CA\"\n", format!("{node}.fleet.lab")),
            ("CallManager", "rsa-2048", "issuer = \"fleet-CA\"\n", format!("{node}.fleet.lab")),
            ("tomcat-ECDSA", "ecdsa-p256", "ca = true\n", format!("{node}-EC.fleet.lab")),
            ("CallManager-ECDSA", "ecdsa-p256", "ca = true\n", format!("{node}-EC.fleet.lab")),
        ] {
            let _ = write!(
                t,
                "\n[certs.\"{node}/{kind}\"]\n{issuer}key = \"{key}\"\nsubject = {{ O = \"Cisco\", CN = \"{cn}\" }}\n\
                 san = [\"dns:{node}.fleet.lab\"]\n"
            );
        }
    }
    t
}
