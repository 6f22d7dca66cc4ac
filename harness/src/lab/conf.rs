//! The workspace's configuration files as the trainee edits them: `expressway.conf` in the
//! Expressway CLI's `xConfiguration <setting>: <value>` syntax and `cucm-system-server.conf`
//! (CUCM System > Server, `<node>: <host name or IP>`), each parsed with errors that name the
//! file and line and rendered as a lab starts, plus the files' names.

use std::collections::BTreeMap;

use crate::fleet::ResolvedFleet;
use crate::source::did_you_mean;

use super::{Lab, LabError};

/// Expressway-C's configuration file, relative to the workspace.
pub const EXPRESSWAY_CONF: &str = "expressway.conf";
/// CUCM System > Server, relative to the workspace.
pub const SYSTEM_SERVER_CONF: &str = "cucm-system-server.conf";

/// Expressway-C's editable settings, as `expressway.conf` holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpresswayConf {
    /// `xConfiguration Ciphers: "..."`; absent: the version's default.
    pub ciphers: Option<String>,
    /// `xConfiguration EdgeConfigServer VerifyOriginServer: On|Off`; absent: On.
    pub verify_origin_server: Option<bool>,
    /// What was applied but cannot do what was meant: each unknown word of the cipher string,
    /// which OpenSSL skips (`expressway.conf:4: Ciphers: 'EECDHX': unknown, ...`).
    pub warnings: Vec<String>,
}

const CIPHERS: &str = "Ciphers";
const VERIFY_ORIGIN: &str = "EdgeConfigServer VerifyOriginServer";

/// Parses `expressway.conf`: blank lines, `#` comments, and `xConfiguration <setting>: <value>`
/// lines for the settings a lab supports. Anything else is an error naming the line.
pub fn parse_expressway_conf(file: &str, text: &str) -> Result<ExpresswayConf, LabError> {
    let mut conf = ExpresswayConf::default();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let error = |message: String| LabError::Config { file: file.to_string(), line, message };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some(rest) = trimmed.strip_prefix("xConfiguration ") else {
            let first = trimmed.split_whitespace().next().unwrap_or_default();
            return Err(error(format!(
                "'{first}': only `xConfiguration <setting>: <value>` lines are read here{}",
                did_you_mean(first, ["xConfiguration"])
            )));
        };
        let Some((setting, value)) = rest.split_once(':') else {
            return Err(error(format!("'{trimmed}': missing ':' between the setting and its value")));
        };
        let setting = setting.split_whitespace().collect::<Vec<_>>().join(" ");
        let value = value.trim();
        let known = [CIPHERS, VERIFY_ORIGIN];
        let Some(key) = known.iter().find(|k| **k == setting) else {
            return Err(error(format!(
                "unknown setting '{setting}'{} (this lab reads: {})",
                did_you_mean(&setting, known),
                known.join(", ")
            )));
        };
        if let Some(first) = seen.insert(key, line) {
            return Err(error(format!("'{setting}' is set twice (first on line {first})")));
        }
        match *key {
            CIPHERS => {
                let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
                    return Err(error(format!("the Ciphers value must be quoted: Ciphers: \"{value}\"")));
                };
                let list = crate::ciphers::CipherList::parse(inner).map_err(|e| error(e.to_string()))?;
                for word in list.unknown_words() {
                    conf.warnings.push(format!("{file}:{line}: Ciphers: {word}"));
                }
                conf.ciphers = Some(inner.to_string());
            }
            _ => {
                conf.verify_origin_server = Some(match value.trim_matches('"') {
                    "On" | "on" => true,
                    "Off" | "off" => false,
                    other => return Err(error(format!("VerifyOriginServer must be On or Off, not '{other}'"))),
                });
            }
        }
    }
    Ok(conf)
}

/// `expressway.conf` as a lab starts.
pub fn render_expressway_conf(lab: &Lab) -> String {
    let e = &lab.expressway;
    let history = match &e.upgraded_from {
        Some(from) => format!("upgraded from {from}"),
        None => "fresh install".to_string(),
    };
    format!(
        "# Expressway-C configuration (cluster-wide) of lab '{}'. Edit, then `./mralab check`.\n\
         # Software version: {} ({history}); peers: {}. Read-only.\n\
         # Syntax as on the Expressway CLI: xConfiguration <setting>: <value>\n\
         xConfiguration {CIPHERS}: \"{}\"\n\
         xConfiguration {VERIFY_ORIGIN}: {}\n",
        lab.name,
        e.version,
        e.peers.join(", "),
        e.ciphers(),
        if e.verify_origin_server { "On" } else { "Off" }
    )
}

/// Parses `cucm-system-server.conf`: `<node>: <name>` per line.
pub fn parse_system_server(
    file: &str,
    text: &str,
    fleet: &ResolvedFleet,
) -> Result<BTreeMap<String, String>, LabError> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let error = |message: String| LabError::Config { file: file.to_string(), line, message };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((node, name)) = trimmed.split_once(':') else {
            return Err(error(format!("'{trimmed}': want `<node>: <host name or IP address>`")));
        };
        let (node, name) = (node.trim(), name.trim());
        if fleet.nodes.iter().all(|n| n.name != node) {
            return Err(error(format!(
                "no node '{node}'{}",
                did_you_mean(node, fleet.nodes.iter().map(|n| n.name.as_str()))
            )));
        }
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(error(format!("'{name}' is not a host name or an IP address")));
        }
        if out.insert(node.to_string(), name.to_string()).is_some() {
            return Err(error(format!("node '{node}' is listed twice")));
        }
    }
    Ok(out)
}

pub(super) fn render_system_server(fleet: &ResolvedFleet) -> String {
    let mut out = String::from(
        "# CUCM System > Server: how each node is advertised to Expressway-C (`<node>: <host name or IP>`).\n\
         # Edit, then `./mralab check` (it refreshes Expressway-C's discovery).\n",
    );
    for node in &fleet.nodes {
        out.push_str(&format!("{}: {}\n", node.name, node.system_server()));
    }
    out
}

/// A trust-store file name for a certificate id (`cups/cup-xmpp` -> `cups-cup-xmpp.pem`).
pub fn file_name(id: &str) -> String {
    format!("{}.pem", id.replace('/', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressway_conf_errors_name_the_line() {
        let text = "# c\nxConfiguration Ciphers: \"EECDH\"\nxConfiguration EdgeConfigServer VerifyOrigin: Off\n";
        let e = parse_expressway_conf("expressway.conf", text).expect_err("unknown setting");
        assert!(e.to_string().starts_with("expressway.conf:3: unknown setting"), "{e}");
        let e = parse_expressway_conf("expressway.conf", "xConfiguration Ciphers: EECDH\n").expect_err("quotes");
        assert!(e.to_string().contains(":1: the Ciphers value must be quoted"), "{e}");
        let ok = parse_expressway_conf("expressway.conf", "xConfiguration EdgeConfigServer VerifyOriginServer: Off\n")
            .expect("parses");
        assert_eq!(ok.verify_origin_server, Some(false));
    }

    #[test]
    fn an_unknown_cipher_word_is_applied_with_a_warning_naming_the_line() {
        let text = "# c\nxConfiguration Ciphers: \"ECDHE-RSA-AES256-GCM-SHA384:EECDHX:EDH:HIGH\"\n";
        let conf = parse_expressway_conf("expressway.conf", text).expect("applied: OpenSSL skips the word");
        assert_eq!(conf.ciphers.as_deref(), Some("ECDHE-RSA-AES256-GCM-SHA384:EECDHX:EDH:HIGH"));
        assert_eq!(
            conf.warnings,
            ["expressway.conf:2: Ciphers: 'EECDHX': unknown, ignored by OpenSSL (did you mean 'EECDH'?)"]
        );
        // Expressway's own default names `!aDH`, which OpenSSL removed: no warning for it.
        let default = format!("xConfiguration Ciphers: \"{}\"\n", crate::ciphers::EXPRESSWAY_DEFAULT);
        assert!(parse_expressway_conf("expressway.conf", &default).expect("parses").warnings.is_empty());
    }
}
