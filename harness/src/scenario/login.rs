//! A login is data: the requests a Jabber client makes over MRA, in order, each sent to every
//! advertised node of the right kind (`scenarios/jabber-login.toml`).

use serde::Deserialize;

use super::spec::LoginVerdict;

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
            Service::Tftp => simulators::TFTP_PORT,
            _ => simulators::TOMCAT_PORT,
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

/// The one login verdict, used by scenario runs and lab checks alike.
///
/// `answers` holds, for every node a request of `login` was sent to, the request's index in
/// `login.requests` and whether the node answered it (200). A required request that went to no
/// node (the cluster has no such service) does not fail the login; one that went to nodes fails
/// it unless at least one answered. Nothing discovered fails it.
pub fn verdict(login: &LoginSpec, discovered: bool, answers: &[(usize, bool)]) -> LoginVerdict {
    let required_ok = login.requests.iter().enumerate().filter(|(_, r)| r.required).all(|(i, _)| {
        let mut sent = answers.iter().filter(|(r, _)| *r == i).peekable();
        sent.peek().is_none() || sent.any(|(_, ok)| *ok)
    });
    let any_failed = answers.iter().any(|(_, ok)| !ok);
    match (required_ok && discovered, any_failed) {
        (true, false) => LoginVerdict::Works,
        (true, true) => LoginVerdict::Degraded,
        (false, _) => LoginVerdict::Fails,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> LoginSpec {
        LoginSpec {
            client: "test".into(),
            user: "u".into(),
            requests: vec![
                LoginRequest { service: Service::Uds, method: get(), path: "/a".into(), required: true },
                LoginRequest { service: Service::Imp, method: get(), path: "/b".into(), required: false },
            ],
        }
    }

    #[test]
    fn every_node_answering_works() {
        assert_eq!(verdict(&login(), true, &[(0, true), (0, true), (1, true)]), LoginVerdict::Works);
    }

    #[test]
    fn a_required_request_answered_by_one_node_of_two_is_degraded() {
        assert_eq!(verdict(&login(), true, &[(0, false), (0, true)]), LoginVerdict::Degraded);
    }

    #[test]
    fn only_an_optional_request_failing_is_degraded() {
        assert_eq!(verdict(&login(), true, &[(0, true), (1, false)]), LoginVerdict::Degraded);
    }

    #[test]
    fn a_required_request_no_node_answered_fails() {
        assert_eq!(verdict(&login(), true, &[(0, false), (0, false), (1, true)]), LoginVerdict::Fails);
    }

    #[test]
    fn a_required_request_sent_nowhere_does_not_fail_the_login() {
        assert_eq!(verdict(&login(), true, &[(1, true)]), LoginVerdict::Works);
    }

    #[test]
    fn nothing_discovered_fails() {
        assert_eq!(verdict(&login(), false, &[]), LoginVerdict::Fails);
    }
}
