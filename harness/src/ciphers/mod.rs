//! Expressway-C's cipher string (`xConfiguration Ciphers`), read as OpenSSL reads it.
//!
//! Expressway's traffic server hands its cipher string to OpenSSL, and the order OpenSSL derives
//! from it decides which certificate a CUCM node serves (SPEC: ECDSA first unless the string
//! starts with `ECDHE-RSA-AES256-GCM-SHA384:`). This module is a port of OpenSSL 3.0's
//! `ssl_cipher_process_rulestr` and `ssl_cipher_apply_rule` (ssl/ssl_ciph.c) over OpenSSL's own
//! cipher table (`ciphers/table.rs`); the result is what `openssl ciphers -s -tls1_2 '<string>'`
//! lists, and, restricted to the six TLS 1.2 suites rustls offers, the client order the verifier
//! model uses. Every word of the string is reported: one that is unknown or matches nothing is
//! data for the user, never silently dropped. The verifier builds its client [`CryptoProvider`]
//! here.
//!
//! Expressway X14.2 links OpenSSL 1.1.1, whose table also holds 3DES (and, in some builds, other
//! weak ciphers). Each rule moves or removes ciphers one by one by their own attributes, so the
//! relative order of rustls' six suites does not depend on which other ciphers exist: the rustls
//! order, and hence [`CipherList::preferred_key`], is the same under 1.1.1. Only
//! [`CipherList::openssl_order`] is specific to OpenSSL 3.0, the version the tests run against.

mod table;

use std::fmt::{self, Write as _};
use std::sync::LazyLock;

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedCipherSuite};

use table::{
    A_ECDSA, A_NULL, A_PSK, A_RSA, A_SRP, ALIASES, CIPHERS, Cipher, DEFAULT_MASK, K_ANY_PSK, K_DHE, K_ECDHE, K_SRP,
    M_MD5, M_SHA1, STRONG_MASK,
};

/// Expressway's default cipher string, as Cisco documents it for X15 (SPEC).
pub const EXPRESSWAY_DEFAULT: &str = "EECDH:EDH:HIGH:-AES256+SHA:!MEDIUM:!LOW:!3DES:!MD5:!PSK:!eNULL:!aNULL:!aDH";

/// The prefix an upgrade from X14.0 or later to X14.2+ puts in front of the cipher string, which
/// keeps RSA preferred (SPEC).
pub const RSA_PREFERENCE_PREFIX: &str = "ECDHE-RSA-AES256-GCM-SHA384:";

/// OpenSSL's default list (`OSSL_default_cipher_list`), which a leading `DEFAULT` expands to.
const OPENSSL_DEFAULT_LIST: &str = "ALL:!COMPLEMENTOFDEFAULT:!eNULL";

/// The security level assumed unless the string says `@SECLEVEL=n`. Upstream's default is 1,
/// Debian builds with 2; both select the same ciphers from OpenSSL 3.0's table (nothing in it has
/// fewer than 112 bits or uses RC4), so `openssl ciphers -s` agrees either way.
const DEFAULT_SECURITY_LEVEL: u8 = 2;

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
                WordOutcome::Unknown { suggestion: Some(s) } => {
                    format!("unknown, ignored by OpenSSL (did you mean '{s}'?)")
                }
                WordOutcome::Unknown { suggestion: None } => match unknown_reason(&w.word) {
                    Some(why) => format!("unknown, ignored by OpenSSL ({why})"),
                    None => "unknown, ignored by OpenSSL".to_owned(),
                },
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

/// `openssl ciphers -s -tls1_2`: `SSL_get1_supported_ciphers` drops PSK and SRP ciphers (no
/// callbacks are set) and asks the security callback (`ssl_security_default_callback`).
fn supported_by_cli(c: &Cipher, level: u8) -> bool {
    if c.mkey & (K_ANY_PSK | K_SRP) != 0 || c.auth & (A_PSK | A_SRP) != 0 {
        return false;
    }
    if level == 0 {
        return true;
    }
    let minbits = match level {
        1 => 80,
        2 => 112,
        3 => 128,
        4 => 192,
        _ => 256,
    };
    if c.strength_bits < minbits || c.auth & A_NULL != 0 || c.mac & M_MD5 != 0 {
        return false;
    }
    if minbits > 160 && c.mac & M_SHA1 != 0 {
        return false;
    }
    if level >= 3 && c.mkey & (K_DHE | K_ECDHE) == 0 {
        return false;
    }
    true
}

/// A selection pattern: the fields `ssl_cipher_apply_rule` matches on.
#[derive(Debug, Default, Clone, Copy)]
struct Pattern {
    cipher_id: Option<u16>,
    mkey: u32,
    auth: u32,
    enc: u32,
    mac: u32,
    min_tls: u16,
    algo_strength: u32,
}

impl Pattern {
    fn matches(&self, c: &Cipher) -> bool {
        if self.cipher_id.is_some_and(|id| id != c.id) {
            return false;
        }
        if (self.mkey != 0 && self.mkey & c.mkey == 0)
            || (self.auth != 0 && self.auth & c.auth == 0)
            || (self.enc != 0 && self.enc & c.enc == 0)
            || (self.mac != 0 && self.mac & c.mac == 0)
        {
            return false;
        }
        if self.min_tls != 0 && self.min_tls != c.min_tls {
            return false;
        }
        if self.algo_strength & STRONG_MASK != 0 && self.algo_strength & STRONG_MASK & c.algo_strength == 0 {
            return false;
        }
        if self.algo_strength & DEFAULT_MASK != 0 && self.algo_strength & DEFAULT_MASK & c.algo_strength == 0 {
            return false;
        }
        true
    }

    /// Adds one `+` part, as `ssl_cipher_process_rulestr` does; false when the parts exclude
    /// each other.
    fn and(&mut self, part: &Part) -> bool {
        fn narrow(acc: &mut u32, mask: u32) -> bool {
            if mask != 0 {
                if *acc != 0 {
                    *acc &= mask;
                    if *acc == 0 {
                        return false;
                    }
                } else {
                    *acc = mask;
                }
            }
            true
        }
        if !(narrow(&mut self.mkey, part.mkey)
            && narrow(&mut self.auth, part.auth)
            && narrow(&mut self.enc, part.enc)
            && narrow(&mut self.mac, part.mac))
        {
            return false;
        }
        // As ssl_cipher_process_rulestr does, quirk included: a first strength class *replaces*
        // the field, dropping a `COMPLEMENTOFDEFAULT` bit set by an earlier part
        // (`COMPLEMENTOFDEFAULT+ECDHE-RSA-CHACHA20-POLY1305` selects that default cipher).
        if part.algo_strength & STRONG_MASK != 0 {
            if self.algo_strength & STRONG_MASK != 0 {
                self.algo_strength &= (part.algo_strength & STRONG_MASK) | !STRONG_MASK;
                if self.algo_strength & STRONG_MASK == 0 {
                    return false;
                }
            } else {
                self.algo_strength = part.algo_strength & STRONG_MASK;
            }
        }
        if part.algo_strength & DEFAULT_MASK != 0 {
            if self.algo_strength & DEFAULT_MASK != 0 {
                self.algo_strength &= (part.algo_strength & DEFAULT_MASK) | !DEFAULT_MASK;
                if self.algo_strength & DEFAULT_MASK == 0 {
                    return false;
                }
            } else {
                self.algo_strength |= part.algo_strength & DEFAULT_MASK;
            }
        }
        match part.cipher_id {
            // An explicit cipher: its version is not part of the pattern.
            Some(id) => self.cipher_id = Some(id),
            None => {
                if part.min_tls != 0 {
                    if self.min_tls != 0 && self.min_tls != part.min_tls {
                        return false;
                    }
                    self.min_tls = part.min_tls;
                }
            }
        }
        true
    }
}

/// A name found in `ca_list`: a cipher (with its id) or an alias.
#[derive(Debug)]
struct Part {
    cipher_id: Option<u16>,
    mkey: u32,
    auth: u32,
    enc: u32,
    mac: u32,
    min_tls: u16,
    algo_strength: u32,
}

fn lookup(name: &str) -> Option<Part> {
    // OpenSSL 3.0 reads OpenSSL names only; IANA names (`TLS_ECDHE_...`) are unknown words.
    if let Some(c) = CIPHERS.iter().find(|c| c.name == name) {
        return Some(Part {
            cipher_id: Some(c.id),
            mkey: c.mkey,
            auth: c.auth,
            enc: c.enc,
            mac: c.mac,
            min_tls: c.min_tls,
            algo_strength: c.algo_strength,
        });
    }
    ALIASES.iter().find(|a| a.name == name).map(|a| Part {
        cipher_id: None,
        mkey: a.mkey,
        auth: a.auth,
        enc: a.enc,
        mac: a.mac,
        min_tls: a.min_tls,
        algo_strength: a.algo_strength,
    })
}

const STATIC_DH: &str = "removed in OpenSSL 1.1.0 with static-DH ciphers";
const STATIC_ECDH: &str = "removed in OpenSSL 1.1.0 with static-ECDH ciphers";
const EXPORT: &str = "removed in OpenSSL 1.1.0 with export ciphers";
const KERBEROS: &str = "removed in OpenSSL 1.1.0 with Kerberos ciphers";
const TLS13: &str = "a TLS 1.3 suite: OpenSSL sets those apart (-ciphersuites), not here";

/// Names OpenSSL 1.0.2 knew and 1.1.0 removed, and TLS 1.3 suites, with why they are unknown:
/// Expressway's own default still says `!aDH`. A look-alike suggestion (`ADH`, anonymous DH)
/// would mislead for these.
const UNKNOWN_FOR_A_REASON: &[(&str, &str)] = &[
    ("aDH", STATIC_DH),
    ("kDH", STATIC_DH),
    ("kDHr", STATIC_DH),
    ("kDHd", STATIC_DH),
    ("aECDH", STATIC_ECDH),
    ("kECDH", STATIC_ECDH),
    ("kECDHr", STATIC_ECDH),
    ("kECDHe", STATIC_ECDH),
    ("EXP", EXPORT),
    ("EXPORT", EXPORT),
    ("EXPORT40", EXPORT),
    ("EXPORT56", EXPORT),
    ("kKRB5", KERBEROS),
    ("aKRB5", KERBEROS),
    ("KRB5", KERBEROS),
    ("SSLv2", "removed in OpenSSL 1.1.0 with SSLv2"),
    ("TLS_AES_256_GCM_SHA384", TLS13),
    ("TLS_CHACHA20_POLY1305_SHA256", TLS13),
    ("TLS_AES_128_GCM_SHA256", TLS13),
    ("TLS_AES_128_CCM_SHA256", TLS13),
    ("TLS_AES_128_CCM_8_SHA256", TLS13),
];

/// Why an unknown word is unknown, when one of its parts is a name listed as such.
fn unknown_reason(word: &str) -> Option<&'static str> {
    word.trim_start_matches(['!', '-', '+'])
        .split('+')
        .find_map(|part| UNKNOWN_FOR_A_REASON.iter().find(|(n, _)| *n == part).map(|(_, why)| *why))
}

/// The closest known name to an unknown one, if it is close enough to be a typo.
fn suggest(unknown: &str) -> Option<&'static str> {
    if UNKNOWN_FOR_A_REASON.iter().any(|(n, _)| *n == unknown) {
        return None;
    }
    // An IANA name: OpenSSL knows the cipher under its own name.
    if let Some(c) = CIPHERS.iter().find(|c| c.stdname == unknown) {
        return Some(c.name);
    }
    let folded = unknown.to_ascii_lowercase();
    let candidates = ALIASES.iter().map(|a| a.name).chain(CIPHERS.iter().map(|c| c.name));
    // Closest first; among equals, the one closest in length (`SHAX` is `SHA`, not `SHA1`).
    let (distance, _, best) = candidates
        .map(|name| {
            let d = strsim::levenshtein(&folded, &name.to_ascii_lowercase());
            (d, name.len().abs_diff(unknown.len()), name)
        })
        .min_by_key(|(d, len, _)| (*d, *len))?;
    (distance <= (unknown.len() / 4).max(2)).then_some(best)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Kill,
    Del,
    Ord,
}

/// OpenSSL's `co_list` as a vector: the order, which ciphers are active, and the security level.
#[derive(Debug)]
struct Engine {
    /// Indices into [`CIPHERS`]; killed ciphers are gone from it.
    order: Vec<usize>,
    active: Vec<bool>,
    security_level: u8,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=')
}

fn is_separator(b: u8) -> bool {
    matches!(b, b':' | b' ' | b';' | b',')
}

impl Engine {
    /// The sorted `co_list`, everything disabled: where `ssl_create_cipher_list` starts reading.
    fn new() -> Self {
        Engine {
            order: (0..CIPHERS.len()).collect(),
            active: vec![false; CIPHERS.len()],
            security_level: DEFAULT_SECURITY_LEVEL,
        }
    }

    fn active(&self) -> impl Iterator<Item = &'static Cipher> + '_ {
        self.order.iter().filter(|&&i| self.active[i]).map(|&i| &CIPHERS[i])
    }

    fn active_names(&self) -> Vec<&'static str> {
        self.active().map(|c| c.name).collect()
    }

    fn move_to(&mut self, idx: usize, tail: bool) {
        if let Some(pos) = self.order.iter().position(|&i| i == idx) {
            self.order.remove(pos);
            if tail {
                self.order.push(idx);
            } else {
                self.order.insert(0, idx);
            }
        }
    }

    /// `ssl_cipher_apply_rule`; returns the ciphers the pattern matched, in list order.
    fn apply(&mut self, select: impl Fn(&Cipher) -> bool, op: Op) -> Vec<usize> {
        let mut visit = self.order.clone();
        let reverse = op == Op::Del;
        if reverse {
            visit.reverse();
        }
        let mut matched = Vec::new();
        for idx in visit {
            if !select(&CIPHERS[idx]) {
                continue;
            }
            matched.push(idx);
            match op {
                Op::Add => {
                    if !self.active[idx] {
                        self.move_to(idx, true);
                        self.active[idx] = true;
                    }
                }
                Op::Ord => {
                    if self.active[idx] {
                        self.move_to(idx, true);
                    }
                }
                Op::Del => {
                    if self.active[idx] {
                        self.move_to(idx, false);
                        self.active[idx] = false;
                    }
                }
                Op::Kill => {
                    self.order.retain(|&i| i != idx);
                    self.active[idx] = false;
                }
            }
        }
        if reverse {
            matched.reverse();
        }
        matched
    }

    /// `ssl_cipher_strength_sort`: a stable sort of the active ciphers by strength bits.
    fn strength_sort(&mut self) {
        let max = self.active().map(|c| c.strength_bits).max().unwrap_or(0);
        for bits in (0..=max).rev() {
            if self.active().any(|c| c.strength_bits == bits) {
                self.apply(|c| c.strength_bits == bits, Op::Ord);
            }
        }
    }

    /// `ssl_cipher_process_rulestr`. `base` is the offset of `rules` in `whole` (for errors).
    fn process(
        &mut self,
        rules: &[u8],
        base: usize,
        whole: &str,
        words: &mut Vec<WordReport>,
    ) -> Result<(), CipherError> {
        let text = |from: usize, to: usize| String::from_utf8_lossy(&rules[from..to]).into_owned();
        let mut l = 0;
        while l < rules.len() {
            let ch = rules[l];
            if is_separator(ch) {
                l += 1;
                continue;
            }
            let start = l;
            let op = match ch {
                b'-' => Some(Op::Del),
                b'+' => Some(Op::Ord),
                b'!' => Some(Op::Kill),
                b'@' => None,
                _ => Some(Op::Add),
            };
            if op != Some(Op::Add) {
                l += 1;
            }
            let word_end = |from: usize| {
                let mut e = from;
                while e < rules.len() && !is_separator(rules[e]) {
                    e += 1;
                }
                e
            };
            let syntax_error = |at: usize| CipherError::Syntax {
                string: whole.to_owned(),
                position: base + at,
                text: String::from_utf8_lossy(&rules[at..word_end(at)]).into_owned(),
            };

            let Some(op) = op else {
                // CIPHER_SPECIAL: one name, then skip to the separator.
                let name_start = l;
                while l < rules.len() && is_word_byte(rules[l]) {
                    l += 1;
                }
                if l == name_start {
                    return Err(syntax_error(name_start));
                }
                let command = text(name_start, l);
                let effect = if command == "STRENGTH" {
                    self.strength_sort();
                    "sorts the list by strength bits (stable)".to_owned()
                } else if let Some(level) = command
                    .strip_prefix("SECLEVEL=")
                    .filter(|d| d.len() == 1)
                    .and_then(|d| d.parse::<u8>().ok())
                    .filter(|&d| d <= 5)
                {
                    self.security_level = level;
                    format!("sets the security level to {level}")
                } else {
                    return Err(CipherError::Command { string: whole.to_owned(), command });
                };
                l = word_end(l);
                words.push(WordReport { word: text(start, l), outcome: WordOutcome::Command { effect } });
                continue;
            };

            // Read the '+'-joined parts of one word.
            let mut pattern = Pattern::default();
            let mut outcome: Option<WordOutcome> = None;
            loop {
                let part_start = l;
                while l < rules.len() && is_word_byte(rules[l]) {
                    l += 1;
                }
                if l == part_start {
                    return Err(syntax_error(part_start));
                }
                let name = text(part_start, l);
                let multi = rules.get(l) == Some(&b'+');
                if multi {
                    l += 1;
                }
                match lookup(&name) {
                    None => {
                        let suggestion = suggest(&name).map(|best| {
                            let mut s = text(start, part_start);
                            s.push_str(best);
                            s.push_str(&text(part_start + name.len(), word_end(part_start)));
                            s
                        });
                        outcome = Some(WordOutcome::Unknown { suggestion });
                        break;
                    }
                    Some(part) => {
                        if !pattern.and(&part) {
                            outcome = Some(WordOutcome::MatchedNothing);
                            break;
                        }
                    }
                }
                if !multi {
                    break;
                }
            }
            let outcome = match outcome {
                Some(o) => {
                    // Not found: OpenSSL skips the rest of the word.
                    l = word_end(l);
                    o
                }
                None => {
                    let matched = self.apply(|c| pattern.matches(c), op);
                    let names: Vec<&'static str> = matched.iter().map(|&i| CIPHERS[i].name).collect();
                    outcome_for(&names)
                }
            };
            words.push(WordReport { word: text(start, l), outcome });
            // Whatever follows the word starts the next one (`HIGH!MEDIUM` reads as
            // `HIGH:!MEDIUM`); a character that cannot start a word fails there.
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::table::{
        A_ECDSA, A_NULL, CIPHERS, E_AES, E_AESGCM, E_CHACHA20POLY1305, E_RC4, K_DHE, K_ECDHE, K_PSK, K_RSA, M_AEAD,
        M_MD5, TLS1_2,
    };
    use super::{Engine, Op};

    /// The table's order is a fixed point of the sort `ssl_create_cipher_list` runs before it
    /// reads a cipher string: replaying it on the table gives the table back. (The CLI
    /// comparisons in tests/ciphers.rs check the order itself.)
    #[test]
    fn table_order_is_a_fixed_point_of_openssls_default_sort() {
        let mut e = Engine::new();
        e.apply(|c| c.mkey & K_ECDHE != 0 && c.auth & A_ECDSA != 0, Op::Add);
        e.apply(|c| c.mkey & K_ECDHE != 0, Op::Add);
        e.apply(|c| c.mkey & K_ECDHE != 0, Op::Del);
        e.apply(|c| c.enc & E_AESGCM != 0, Op::Add);
        e.apply(|c| c.enc & E_CHACHA20POLY1305 != 0, Op::Add);
        e.apply(|c| c.enc & (E_AES ^ E_AESGCM) != 0, Op::Add);
        e.apply(|_| true, Op::Add);
        e.apply(|c| c.mac & M_MD5 != 0, Op::Ord);
        e.apply(|c| c.auth & A_NULL != 0, Op::Ord);
        e.apply(|c| c.mkey & K_RSA != 0, Op::Ord);
        e.apply(|c| c.mkey & K_PSK != 0, Op::Ord);
        e.apply(|c| c.enc & E_RC4 != 0, Op::Ord);
        e.strength_sort();
        // CIPHER_BUMP, everything active: a stable move of the matches to the head.
        let mut bump = |select: &dyn Fn(usize) -> bool| e.order.sort_by_key(|&i| !select(i));
        bump(&|i| CIPHERS[i].min_tls == TLS1_2);
        bump(&|i| CIPHERS[i].mac & M_AEAD != 0);
        bump(&|i| CIPHERS[i].mkey & (K_DHE | K_ECDHE) != 0);
        bump(&|i| CIPHERS[i].mkey & (K_DHE | K_ECDHE) != 0 && CIPHERS[i].mac & M_AEAD != 0);
        let expected: Vec<usize> = (0..CIPHERS.len()).collect();
        assert_eq!(e.order, expected);
    }
}
