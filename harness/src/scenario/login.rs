//! A login is data: the requests a Jabber client makes over MRA, in order, each sent to every
//! advertised node of the right kind (`scenarios/jabber-login.toml`).

use serde::Deserialize;

/// The login file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSpec {
    /// What client this imitates.
    pub client: String,
    /// The user who logs in (`{user}` in paths; `{USER}` upper-cased).
    pub user: String,
    /// The requests, in order.
    pub requests: Vec<LoginRequest>,
}

/// Which nodes a request goes to, and on which port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    /// CUCM UDS on 8443.
    Uds,
    /// CUCM TFTP over HTTPS on 6972.
    Tftp,
    /// IM&P on 8443.
    Imp,
    /// Unity Connection on 8443.
    Unity,
}

impl Service {
    /// The origin port.
    pub fn port(self) -> u16 {
        match self {
            Service::Tftp => 6972,
            _ => 8443,
        }
    }

    /// The name used in output.
    pub fn name(self) -> &'static str {
        match self {
            Service::Uds => "uds",
            Service::Tftp => "tftp",
            Service::Imp => "imp",
            Service::Unity => "unity",
        }
    }
}

/// One request of a login.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Which nodes.
    pub service: Service,
    /// The method.
    #[serde(default = "get")]
    pub method: String,
    /// The path, with `{user}` / `{USER}`.
    pub path: String,
    /// Whether the login fails without it.
    pub required: bool,
}

fn get() -> String {
    "GET".into()
}

impl LoginSpec {
    /// The built-in Jabber login (the same text as `scenarios/jabber-login.toml`).
    pub fn jabber() -> LoginSpec {
        // The embedded file is checked by a test; a parse failure here would be a build bug.
        toml::from_str(include_str!("../../../scenarios/jabber-login.toml")).unwrap_or_else(|e| {
            panic!("scenarios/jabber-login.toml is invalid: {e}");
        })
    }

    /// `path` with the user filled in.
    pub fn expand(&self, path: &str) -> String {
        path.replace("{user}", &self.user).replace("{USER}", &self.user.to_ascii_uppercase())
    }
}
