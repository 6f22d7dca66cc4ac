//! Expressway-C's cipher string (`xConfiguration Ciphers`), read as OpenSSL reads it.
//!
//! Expressway's traffic server hands its cipher string to OpenSSL, and the order OpenSSL derives
//! from it decides which certificate a CUCM node serves (SPEC: ECDSA first unless the string
//! starts with `ECDHE-RSA-AES256-GCM-SHA384:`). This module is a port of OpenSSL 3.0's
//! `ssl_cipher_process_rulestr` and `ssl_cipher_apply_rule` (ssl/ssl_ciph.c) over OpenSSL's own
//! cipher table; the result is what `openssl ciphers -s -tls1_2 '<string>'` lists, and,
//! restricted to the six TLS 1.2 suites rustls offers, the client order the verifier model uses.
//! Every word of the string is reported: one that is unknown or matches nothing is data for the
//! user, never silently dropped. The verifier builds its client [`CryptoProvider`] here.
//!
//! Expressway X14.2 links OpenSSL 1.1.1, whose table also holds 3DES (and, in some builds, other
//! weak ciphers). Each rule moves or removes ciphers one by one by their own attributes, so the
//! relative order of rustls' six suites does not depend on which other ciphers exist: the rustls
//! order, and hence [`CipherList::preferred_key`], is the same under 1.1.1. Only
//! [`CipherList::openssl_order`] is specific to OpenSSL 3.0, the version the tests run against.
//!
//! This file holds the public types and what the rest of the harness calls: [`CipherList`] and
//! its report, the mapping onto rustls' suites and the client [`CryptoProvider`], and the name
//! conversions ([`openssl_name`], [`iana_name`]). The rule engine is in `rules.rs`, the reading
//! of one name (aliases, cipher names, names OpenSSL removed, suggestions) in `alias.rs`, and
//! OpenSSL's cipher and alias tables, as data, in `table.rs`.

mod alias;
mod rules;
mod table;

use std::fmt::{self, Write as _};
use std::sync::LazyLock;

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedCipherSuite};

use alias::unknown_reason;
use rules::{Engine, supported_by_cli};
use table::{A_ECDSA, A_RSA, CIPHERS, Cipher};

/// Expressway's default cipher string, as Cisco documents it for X15 (SPEC).
pub const EXPRESSWAY_DEFAULT: &str = "EECDH:EDH:HIGH:-AES256+SHA:!MEDIUM:!LOW:!3DES:!MD5:!PSK:!eNULL:!aNULL:!aDH";

/// The prefix an upgrade from X14.0 or later to X14.2+ puts in front of the cipher string, which
/// keeps RSA preferred (SPEC).
pub const RSA_PREFERENCE_PREFIX: &str = "ECDHE-RSA-AES256-GCM-SHA384:";

/// OpenSSL's default list (`OSSL_default_cipher_list`), which a leading `DEFAULT` expands to.
const OPENSSL_DEFAULT_LIST: &str = "ALL:!COMPLEMENTOFDEFAULT:!eNULL";

/// OpenSSL's names of the TLS 1.3 suites rustls offers, in OpenSSL's default order
/// (`TLS_DEFAULT_CIPHERSUITES`).
const TLS13_OPENSSL_ORDER: [(CipherSuite, &str); 3] = [
    (CipherSuite::TLS13_AES_256_GCM_SHA384, "TLS_AES_256_GCM_SHA384"),
    (CipherSuite::TLS13_CHACHA20_POLY1305_SHA256, "TLS_CHACHA20_POLY1305_SHA256"),
    (CipherSuite::TLS13_AES_128_GCM_SHA256, "TLS_AES_128_GCM_SHA256"),
];

/// What went wrong reading a cipher string. Only what OpenSSL itself refuses is an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// A character OpenSSL cannot read where a word should start (`SSL_R_INVALID_COMMAND`).
    #[error("cipher string '{string}': cannot read '{text}' at byte {position}")]
    Syntax {
        /// The whole cipher string.
        string: String,
        /// Byte offset of the unreadable text.
        position: usize,
        /// The unreadable text, up to the next separator.
        text: String,
    },
    /// An `@` command other than `@STRENGTH` or `@SECLEVEL=0..5`.
    #[error("cipher string '{string}': unknown command '@{command}'")]
    Command {
        /// The whole cipher string.
        string: String,
        /// The command after `@`.
        command: String,
    },
    /// No TLS 1.2-and-below cipher is left (`SSL_R_NO_CIPHER_MATCH`).
    #[error("cipher string '{string}': no cipher match")]
    NoCipherMatch {
        /// The whole cipher string.
        string: String,
    },
}

/// Which certificate a node that follows the client's cipher order serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPreference {
    /// An ECDHE-ECDSA suite comes first: the ECDSA certificate (`tomcat-ECDSA`, ...).
    Ecdsa,
    /// An ECDHE-RSA suite comes first: the RSA certificate (`tomcat`, ...).
    Rsa,
}

impl fmt::Display for KeyPreference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ecdsa => "ECDSA",
            Self::Rsa => "RSA",
        })
    }
}

/// One word of a cipher string and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordReport {
    /// The word as written, with its prefix (`!`, `-`, `+`, `@`) and any `+` parts.
    pub word: String,
    /// What it matched.
    pub outcome: WordOutcome,
}

/// What one word of a cipher string matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WordOutcome {
    /// It touched OpenSSL ciphers, some of them rustls suites.
    Matched {
        /// OpenSSL names of the ciphers it touched, in list order.
        openssl: Vec<String>,
        /// Those of them rustls offers.
        rustls: Vec<String>,
    },
    /// It touched OpenSSL ciphers, none of which rustls offers.
    MatchedNoRustlsSuite {
        /// OpenSSL names of the ciphers it touched, in list order.
        openssl: Vec<String>,
    },
    /// Every part is a known name, but together they select no cipher left in the list (an
    /// algorithm OpenSSL 3 does not build, such as `3DES`; parts that exclude each other, such as
    /// `kECDHE+kDHE`; or a cipher an earlier `!` removed).
    MatchedNothing,
    /// A part is no alias or cipher name OpenSSL knows; OpenSSL skips the word.
    Unknown {
        /// The word with its unknown part replaced by the closest known name, if one is close.
        suggestion: Option<String>,
    },
    /// A command (`@STRENGTH`, `@SECLEVEL=n`) rather than a selection.
    Command {
        /// What it did.
        effect: String,
    },
}

/// A cipher string and the order OpenSSL derives from it.
#[derive(Debug, Clone)]
pub struct CipherList {
    source: String,
    /// `SSL_get_ciphers`: every TLS 1.2-and-below cipher selected, supported or not.
    selected: Vec<&'static str>,
    /// What `openssl ciphers -s -tls1_2` lists.
    supported: Vec<&'static str>,
    /// The rustls TLS 1.2 suites among `supported`, in that order.
    suites: Vec<SupportedCipherSuite>,
    words: Vec<WordReport>,
    security_level: u8,
}

impl CipherList {
    /// Reads `s` as OpenSSL 3.0 reads a cipher string.
    ///
    /// Words are separated by `:`, `,`, `;` or spaces; a word may start with `!` (remove for
    /// good), `-` (remove, may come back), `+` (move to the end) or `@` (`@STRENGTH`,
    /// `@SECLEVEL=n`), and may join names with `+` (all must match). A leading `DEFAULT`
    /// stands for OpenSSL's default list.
    ///
    /// # Errors
    /// Only where OpenSSL refuses the string: text it cannot read as a word
    /// ([`CipherError::Syntax`]), an unknown `@` command ([`CipherError::Command`]), or no
    /// TLS 1.2-and-below cipher selected ([`CipherError::NoCipherMatch`]). Unknown words and
    /// words that match nothing are in [`CipherList::words`]; a string that selects ciphers but
    /// none rustls offers (`EDH`) parses, with empty [`CipherList::rustls_suites`].
    pub fn parse(s: &str) -> Result<CipherList, CipherError> {
        let mut engine = Engine::new();
        let mut words = Vec::new();
        let mut rules = s.as_bytes();
        let mut offset = 0;
        if rules.starts_with(b"DEFAULT") {
            // ssl_create_cipher_list: only a *leading* DEFAULT is special.
            let mut default_words = Vec::new();
            engine.process(OPENSSL_DEFAULT_LIST.as_bytes(), 0, s, &mut default_words)?;
            let openssl: Vec<&'static str> = engine.active_names();
            words.push(WordReport { word: "DEFAULT".to_owned(), outcome: outcome_for(&openssl) });
            offset = 7;
            if rules.get(7) == Some(&b':') {
                offset = 8;
            }
            rules = &rules[offset..];
        }
        engine.process(rules, offset, s, &mut words)?;

        let selected = engine.active_names();
        if selected.is_empty() {
            return Err(CipherError::NoCipherMatch { string: s.to_owned() });
        }
        let supported: Vec<&'static str> =
            engine.active().filter(|c| supported_by_cli(c, engine.security_level)).map(|c| c.name).collect();
        let suites = supported.iter().filter_map(|name| rustls_suite(name)).collect();
        Ok(CipherList {
            source: s.to_owned(),
            selected,
            supported,
            suites,
            words,
            security_level: engine.security_level,
        })
    }

    /// The cipher string as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What `openssl ciphers -s -tls1_2 '<string>'` lists: the TLS 1.2-and-below ciphers OpenSSL
    /// would offer, in order (PSK and SRP ciphers and those below the security level left out;
    /// no TLS 1.3 names).
    pub fn openssl_order(&self) -> &[&'static str] {
        &self.supported
    }

    /// What `openssl ciphers '<string>'` lists without `-s` (TLS 1.3 names left out): every cipher
    /// the string selects, whether this client could use it or not.
    pub fn openssl_selection(&self) -> &[&'static str] {
        &self.selected
    }

    /// The TLS 1.2 rustls suites in the derived order; empty when the string selects none of them.
    pub fn rustls_suites(&self) -> Vec<SupportedCipherSuite> {
        self.suites.clone()
    }

    /// OpenSSL names of [`CipherList::rustls_suites`].
    pub fn suite_names(&self) -> Vec<&'static str> {
        self.suites.iter().filter_map(|s| openssl_name(s.suite())).collect()
    }

    /// Every word of the string, in order, and what it matched.
    pub fn words(&self) -> &[WordReport] {
        &self.words
    }

    /// The words OpenSSL skips because it does not know them (a typo such as `EECDHX`), each
    /// as `'EECDHX': unknown, ignored by OpenSSL (did you mean 'EECDH'?)`, in string order.
    /// Names OpenSSL once knew and removed (`!aDH`, which Expressway's own default still
    /// carries) are not counted. `cargo xtask ciphers` shows every word in its report.
    pub fn unknown_words(&self) -> Vec<String> {
        self.words
            .iter()
            .filter_map(|w| match &w.outcome {
                WordOutcome::Unknown { suggestion } if suggestion.is_some() || unknown_reason(&w.word).is_none() => {
                    Some(format!("'{}': {}", w.word, unknown_text(&w.word, suggestion.as_deref())))
                }
                _ => None,
            })
            .collect()
    }

    /// The security level in force after the string: its last `@SECLEVEL=n`, else 2.
    pub fn security_level(&self) -> u8 {
        self.security_level
    }

    /// The certificate a node that follows the client's order serves: the authentication of the
    /// first rustls suite, or `None` when the string selects no rustls suite.
    pub fn preferred_key(&self) -> Option<KeyPreference> {
        let first = self.suites.first()?;
        let cipher = cipher_by_id(u16::from(first.suite()))?;
        match cipher.auth {
            A_ECDSA => Some(KeyPreference::Ecdsa),
            A_RSA => Some(KeyPreference::Rsa),
            _ => None,
        }
    }

    /// aws-lc-rs' default provider offering exactly this order: the TLS 1.3 suites first in
    /// OpenSSL's default order when `tls13`, then the TLS 1.2 ones in derived order.
    ///
    /// Always built from `aws_lc_rs::default_provider()`, never the process default (a second
    /// provider in the tree makes that panic; FIELD-NOTES). With `tls13` false and no TLS 1.2
    /// suite selected the provider has no suites, and a config built on it fails: the caller
    /// reports that as the handshake outcome.
    pub fn crypto_provider(&self, tls13: bool) -> CryptoProvider {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        let mut suites = Vec::new();
        if tls13 {
            for (wanted, _) in TLS13_OPENSSL_ORDER {
                if let Some(s) = provider.cipher_suites.iter().find(|s| s.suite() == wanted) {
                    suites.push(*s);
                }
            }
        }
        suites.extend(self.suites.iter().copied());
        provider.cipher_suites = suites;
        provider
    }

    /// The text `cargo xtask ciphers '<string>'` prints: the derived order, each word and what
    /// it matched, and the certificate a node following the client's order would serve.
    pub fn report(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "cipher string: {}", self.source);
        let _ = writeln!(
            out,
            "\nOpenSSL order (openssl ciphers -s -tls1_2, security level {}): {} ciphers",
            self.security_level,
            self.supported.len()
        );
        for (i, name) in self.supported.iter().enumerate() {
            let iana = cipher_by_name(name).map_or("", |c| c.stdname);
            let mark = if rustls_suite(name).is_some() { "  [rustls]" } else { "" };
            let _ = writeln!(out, "  {:>3}. {name:<31} {iana}{mark}", i + 1);
        }
        let _ = writeln!(out, "\nrustls TLS 1.2 order:");
        if self.suites.is_empty() {
            let _ = writeln!(out, "  (none: no TLS 1.2 suite rustls offers is selected)");
        }
        for (i, suite) in self.suites.iter().enumerate() {
            let name = openssl_name(suite.suite()).unwrap_or("?");
            let _ = writeln!(out, "  {}. {name} ({:?})", i + 1, suite.suite());
        }
        let tls13: Vec<&str> = TLS13_OPENSSL_ORDER.iter().map(|(_, n)| *n).collect();
        let _ =
            writeln!(out, "  (with TLS 1.3 on, {} come first; the cipher string does not set them)", tls13.join(", "));
        let _ = writeln!(out, "\nwords:");
        let width = self.words.iter().map(|w| w.word.len()).max().unwrap_or(0);
        for w in &self.words {
            let what = match &w.outcome {
                WordOutcome::Matched { openssl, rustls } => format!(
                    "matched {} OpenSSL cipher{}; rustls: {}",
                    openssl.len(),
                    plural(openssl.len()),
                    rustls.join(", ")
                ),
                WordOutcome::MatchedNoRustlsSuite { openssl } => {
                    format!("matched {} OpenSSL cipher{}, no rustls suite", openssl.len(), plural(openssl.len()))
                }
                WordOutcome::MatchedNothing => "matched nothing".to_owned(),
                WordOutcome::Unknown { suggestion } => unknown_text(&w.word, suggestion.as_deref()),
                WordOutcome::Command { effect } => effect.clone(),
            };
            let _ = writeln!(out, "  {:<width$}  {what}", w.word);
        }
        let _ = writeln!(out);
        match (self.preferred_key(), self.suites.first()) {
            (Some(key), Some(first)) => {
                let first = openssl_name(first.suite()).unwrap_or("?");
                let _ = writeln!(
                    out,
                    "over TLS 1.2, a node that follows the client's order serves its {key} \
                     certificate (first suite {first})"
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "no TLS 1.2 suite rustls offers is selected: a TLS 1.2 handshake with a rustls \
                     node fails (over TLS 1.3 the signature schemes choose the certificate)"
                );
            }
        }
        out
    }
}

/// What the report says of an unknown word: ignored, and the likely typo or the reason.
fn unknown_text(word: &str, suggestion: Option<&str>) -> String {
    match (suggestion, unknown_reason(word)) {
        (Some(s), _) => format!("unknown, ignored by OpenSSL (did you mean '{s}'?)"),
        (None, Some(why)) => format!("unknown, ignored by OpenSSL ({why})"),
        (None, None) => "unknown, ignored by OpenSSL".to_owned(),
    }
}

/// OpenSSL's name of a cipher suite (IANA code), as `openssl ciphers` prints it: the TLS 1.3
/// ones under their IANA names, the others under OpenSSL's own (`ECDHE-RSA-AES256-GCM-SHA384`).
pub fn openssl_name(suite: CipherSuite) -> Option<&'static str> {
    if let Some((_, name)) = TLS13_OPENSSL_ORDER.iter().find(|(s, _)| *s == suite) {
        return Some(name);
    }
    cipher_by_id(u16::from(suite)).map(|c| c.name)
}

/// The IANA name of an OpenSSL cipher name (`ECDHE-RSA-AES256-GCM-SHA384` is
/// `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384`), as `openssl ciphers -stdname` prints it; TLS 1.2 and
/// below only.
pub fn iana_name(openssl_name: &str) -> Option<&'static str> {
    cipher_by_name(openssl_name).map(|c| c.stdname)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn cipher_by_name(name: &str) -> Option<&'static Cipher> {
    CIPHERS.iter().find(|c| c.name == name)
}

fn cipher_by_id(id: u16) -> Option<&'static Cipher> {
    CIPHERS.iter().find(|c| c.id == id)
}

/// The TLS 1.2 suites rustls (aws-lc-rs) offers: ECDHE-ECDSA and ECDHE-RSA with AES-128-GCM,
/// AES-256-GCM and ChaCha20-Poly1305.
static RUSTLS_TLS12: LazyLock<Vec<SupportedCipherSuite>> = LazyLock::new(|| {
    rustls::crypto::aws_lc_rs::default_provider().cipher_suites.into_iter().filter(|s| s.tls13().is_none()).collect()
});

/// The rustls suite of an OpenSSL cipher name, if rustls offers it.
fn rustls_suite(name: &str) -> Option<SupportedCipherSuite> {
    let cipher = cipher_by_name(name)?;
    RUSTLS_TLS12.iter().find(|s| u16::from(s.suite()) == cipher.id).copied()
}

fn outcome_for(names: &[&'static str]) -> WordOutcome {
    if names.is_empty() {
        return WordOutcome::MatchedNothing;
    }
    let openssl: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let rustls: Vec<String> = names.iter().filter(|n| rustls_suite(n).is_some()).map(|n| (*n).to_owned()).collect();
    if rustls.is_empty() {
        WordOutcome::MatchedNoRustlsSuite { openssl }
    } else {
        WordOutcome::Matched { openssl, rustls }
    }
}
