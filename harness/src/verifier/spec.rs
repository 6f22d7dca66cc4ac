//! A verifier as people name it (`--verifier builtin:ats-9.2`, `ats`, `cmd:adapters/openssl.sh`):
//! parsed once, and knowing the factory it makes and the snapshot folder its runs are compared
//! with. The CLI and the tests use this one mapping.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::ats::{AtsFactory, Generation, Launch};
use super::builtin::BuiltinFactory;
use super::command::CommandFactory;
use super::{Profile, VerifierFactory};

/// A verifier by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifierSpec {
    /// The built-in model under one profile (`builtin`, `builtin:<profile>`).
    Builtin(Profile),
    /// The real Apache Traffic Server: installed on this machine (`ats`), or in a container of
    /// mralab's images (`ats:8.1`, `ats:9.2`).
    Ats(Launch),
    /// An external command speaking the JSON-lines protocol (`cmd:<path>`).
    Command(PathBuf),
}

/// A verifier name that names no verifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierSpecError {
    /// Not one of the forms.
    #[error(
        "unknown verifier '{0}'; available: builtin, builtin:expressway-x14.2, builtin:ats-9.2, ats, ats:8.1, ats:9.2, \
         cmd:<path>"
    )]
    Unknown(String),
    /// `builtin:<profile>` with a profile the model does not have.
    #[error("unknown profile '{0}'; profiles: {profiles}", profiles = Profile::ALL.map(Profile::name).join(", "))]
    UnknownProfile(String),
    /// `cmd:<path>` where the path is no file.
    #[error("--verifier cmd:{}: no such file", .0.display())]
    NoSuchCommand(PathBuf),
}

impl FromStr for VerifierSpec {
    type Err = VerifierSpecError;

    /// `builtin` is the default profile (`expressway-x14.2`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None if s == "builtin" => Ok(VerifierSpec::Builtin(Profile::ExpresswayX14_2)),
            None if s == "ats" => Ok(VerifierSpec::Ats(Launch::Host)),
            Some(("ats", "8.1")) => Ok(VerifierSpec::Ats(Launch::Container(Generation::V8_1))),
            Some(("ats", "9.2")) => Ok(VerifierSpec::Ats(Launch::Container(Generation::V9_2))),
            Some(("builtin", profile)) => Profile::from_name(profile)
                .map(VerifierSpec::Builtin)
                .ok_or_else(|| VerifierSpecError::UnknownProfile(profile.to_string())),
            Some(("cmd", path)) if !path.is_empty() => Ok(VerifierSpec::Command(PathBuf::from(path))),
            _ => Err(VerifierSpecError::Unknown(s.to_string())),
        }
    }
}

impl fmt::Display for VerifierSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifierSpec::Builtin(profile) => write!(f, "builtin:{profile}"),
            VerifierSpec::Ats(launch) => f.write_str(&launch.name()),
            VerifierSpec::Command(path) => write!(f, "cmd:{}", path.display()),
        }
    }
}

impl VerifierSpec {
    /// The folder under `snapshots/` its runs are compared with: `builtin` for the default
    /// profile, `builtin-<profile>` for another, `ats` for ATS 9.2 on the host or in its container
    /// (the same traffic server, the same snapshots), `ats-8.1`, `cmd-<stem>` (see
    /// [`CommandFactory::snapshot_dir`]).
    pub fn snapshot_dir(&self) -> String {
        match self {
            VerifierSpec::Builtin(Profile::ExpresswayX14_2) => "builtin".to_string(),
            VerifierSpec::Builtin(profile) => format!("builtin-{profile}"),
            VerifierSpec::Ats(launch) => match launch.generation() {
                Generation::V9_2 => "ats".to_string(),
                Generation::V8_1 => "ats-8.1".to_string(),
            },
            VerifierSpec::Command(path) => CommandFactory::snapshot_dir(path),
        }
    }

    /// The factory that makes this verifier. A command that is no file is refused here, before
    /// any scenario runs.
    pub fn factory(&self) -> Result<Box<dyn VerifierFactory>, VerifierSpecError> {
        Ok(match self {
            VerifierSpec::Builtin(profile) => Box::new(BuiltinFactory(*profile)),
            VerifierSpec::Ats(launch) => Box::new(AtsFactory(*launch)),
            VerifierSpec::Command(path) if path.is_file() => Box::new(CommandFactory::new(path.clone())),
            VerifierSpec::Command(path) => return Err(VerifierSpecError::NoSuchCommand(path.clone())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(name: &str, spec: VerifierSpec, dir: &str) {
        let parsed: VerifierSpec = name.parse().expect("parses");
        assert_eq!(parsed, spec);
        assert_eq!(parsed.snapshot_dir(), dir);
    }

    #[test]
    fn each_form_parses_to_its_verifier_and_snapshot_folder() {
        check("builtin", VerifierSpec::Builtin(Profile::ExpresswayX14_2), "builtin");
        check("builtin:expressway-x14.2", VerifierSpec::Builtin(Profile::ExpresswayX14_2), "builtin");
        check("builtin:ats-9.2", VerifierSpec::Builtin(Profile::Ats9_2), "builtin-ats-9.2");
        check("ats", VerifierSpec::Ats(Launch::Host), "ats");
        check("ats:9.2", VerifierSpec::Ats(Launch::Container(Generation::V9_2)), "ats");
        check("ats:8.1", VerifierSpec::Ats(Launch::Container(Generation::V8_1)), "ats-8.1");
        check("cmd:adapters/python_ssl.py", VerifierSpec::Command("adapters/python_ssl.py".into()), "cmd-python");
    }

    #[test]
    fn the_display_form_parses_back() {
        for name in ["builtin:ats-9.2", "builtin:expressway-x14.2", "ats", "ats:8.1", "ats:9.2", "cmd:adapters/curl.sh"]
        {
            assert_eq!(name.parse::<VerifierSpec>().expect("parses").to_string(), name);
        }
    }

    #[test]
    fn unknown_names_and_profiles_are_refused_with_the_choices() {
        let e = "openssl".parse::<VerifierSpec>().expect_err("refused");
        assert_eq!(e, VerifierSpecError::Unknown("openssl".into()));
        assert!(e.to_string().contains("available: builtin"), "{e}");
        let e = "builtin:x14".parse::<VerifierSpec>().expect_err("refused");
        assert_eq!(e.to_string(), "unknown profile 'x14'; profiles: expressway-x14.2, ats-9.2");
        assert_eq!("cmd:".parse::<VerifierSpec>().expect_err("refused"), VerifierSpecError::Unknown("cmd:".into()));
    }

    #[test]
    fn a_command_that_is_no_file_is_refused_when_its_factory_is_made() {
        let spec = VerifierSpec::Command("no/such/adapter.sh".into());
        assert_eq!(spec.factory().err(), Some(VerifierSpecError::NoSuchCommand("no/such/adapter.sh".into())));
    }
}
