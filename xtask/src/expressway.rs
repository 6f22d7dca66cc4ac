//! Expressway-C settings shared by the commands that run the model outside a scenario.

use anyhow::Context as _;
use clap::Args;
use harness::expressway::{ExpresswaySpec, Policy, Version};
use harness::verifier::Profile;

#[derive(Debug, Clone, Args)]
pub struct ExpresswayArgs {
    /// Expressway-C version.
    #[arg(long, default_value = "X14.2")]
    pub version: String,
    /// The version it was upgraded from (decides the default cipher list).
    #[arg(long)]
    pub upgraded_from: Option<String>,
    /// `xConfiguration Ciphers` (an OpenSSL cipher string); the version's default when absent.
    #[arg(long)]
    pub ciphers: Option<String>,
    /// Override the traffic server policy: enforced, permissive, disabled.
    #[arg(long)]
    pub policy: Option<String>,
    /// `xConfiguration EdgeConfigServer VerifyOriginServer: Off`.
    #[arg(long)]
    pub verify_origin_off: bool,
    /// The model's profile: expressway-x14.2 or ats-9.2.
    #[arg(long, default_value = "expressway-x14.2")]
    pub profile: String,
}

impl ExpresswayArgs {
    /// The profile named.
    pub fn profile(&self) -> anyhow::Result<Profile> {
        Profile::from_name(&self.profile).with_context(|| {
            format!("unknown profile '{}'; profiles: {}", self.profile, Profile::ALL.map(Profile::name).join(", "))
        })
    }

    /// The configuration these settings describe, with `publisher` for discovery.
    pub fn spec(&self, publisher: &str) -> anyhow::Result<ExpresswaySpec> {
        let version: Version = self.version.parse()?;
        let upgraded_from = self.upgraded_from.as_deref().map(str::parse::<Version>).transpose()?;
        let mut spec = ExpresswaySpec::new(version, upgraded_from, publisher);
        if let Some(ciphers) = &self.ciphers {
            harness::ciphers::CipherList::parse(ciphers).with_context(|| format!("--ciphers '{ciphers}'"))?;
            spec.ciphers = Some(ciphers.clone());
        }
        spec.verify_origin_server = !self.verify_origin_off;
        spec.policy = match self.policy.as_deref() {
            None => None,
            Some("enforced") => Some(Policy::Enforced),
            Some("permissive") => Some(Policy::Permissive),
            Some("disabled") => Some(Policy::Disabled),
            Some(other) => anyhow::bail!("--policy '{other}': use enforced, permissive or disabled"),
        };
        Ok(spec)
    }
}
