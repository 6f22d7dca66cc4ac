//! rustls plumbing for one service: a prebuilt `ServerConfig` per identity (so a connection
//! only picks an `Arc`, see [`crate::choice`]), the client-certificate verifier that makes 6972
//! send a CertificateRequest naming its trust, and the names (Wireshark alerts, subjects) that
//! events show.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    AlertDescription, CertificateError, DigitallySignedStruct, DistinguishedName, Error, KeyLogFile, RootCertStore,
    ServerConfig, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::config::{ClientAuth, Identity, KeyAlg};
use crate::record::{NodeKeyLog, Recorder};

/// The one crypto provider every config uses (FIELD-NOTES: never rely on a process default).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Why an identity or a client-auth setting could not be turned into a TLS config.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The chain is empty.
    #[error("identity '{identity}' has an empty chain")]
    EmptyChain {
        /// The identity's name.
        identity: String,
    },
    /// The key could not be loaded, or does not match the first certificate.
    #[error("identity '{identity}': {source}")]
    Key {
        /// The identity's name.
        identity: String,
        /// What rustls said.
        source: Error,
    },
    /// The key is of the other algorithm than the slot it was given in.
    #[error("identity '{identity}' has an {found} key but was given as the {expected} identity")]
    WrongAlgorithm {
        /// The identity's name.
        identity: String,
        /// The slot it was given in.
        expected: KeyAlg,
        /// What its key is.
        found: String,
    },
    /// A trust certificate could not be used as a trust anchor.
    #[error("client-certificate trust: {0}")]
    Trust(Error),
    /// `Require` with no usable trust anchor could never accept anyone.
    #[error("client-certificate trust: `Require` needs at least one trust certificate")]
    NoTrust,
}

/// An identity ready to serve: its name, loaded key, and a config presenting only it.
pub(crate) struct Served {
    pub(crate) name: String,
    pub(crate) alg: KeyAlg,
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) config: Arc<ServerConfig>,
}

impl fmt::Debug for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Served").field("name", &self.name).field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// A service's current identities; swapped as a whole by `set_identities`.
#[derive(Debug)]
pub(crate) struct ServiceTls {
    pub(crate) rsa: Option<Served>,
    pub(crate) ecdsa: Option<Served>,
}

impl ServiceTls {
    pub(crate) fn served(&self, alg: KeyAlg) -> Option<&Served> {
        match alg {
            KeyAlg::Rsa => self.rsa.as_ref(),
            KeyAlg::Ecdsa => self.ecdsa.as_ref(),
        }
    }

    /// The identities present, RSA first.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Served> {
        self.rsa.iter().chain(self.ecdsa.iter())
    }
}

/// What every config of a service shares.
#[derive(Clone, Debug)]
pub(crate) struct ConfigBase {
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) tls13: bool,
    pub(crate) verifier: Option<Arc<dyn ClientCertVerifier>>,
    pub(crate) key_log: Arc<NodeKeyLog>,
}

impl ConfigBase {
    pub(crate) fn build(
        provider: Arc<CryptoProvider>,
        tls13: bool,
        client_auth: &ClientAuth,
        key_log: bool,
        clock: Option<UnixTime>,
        recorder: &Arc<Recorder>,
    ) -> Result<Self, TlsSetupError> {
        let verifier = client_verifier(&provider, client_auth, clock)?;
        let key_log =
            Arc::new(NodeKeyLog { recorder: recorder.clone(), file: key_log.then(|| Arc::new(KeyLogFile::new())) });
        Ok(ConfigBase { provider, tls13, verifier, key_log })
    }

    fn load(&self, identity: &Identity, expected: KeyAlg) -> Result<Served, TlsSetupError> {
        if identity.chain.is_empty() {
            return Err(TlsSetupError::EmptyChain { identity: identity.name.clone() });
        }
        let key = CertifiedKey::from_der(identity.chain.clone(), identity.key.clone_key(), &self.provider)
            .map_err(|source| TlsSetupError::Key { identity: identity.name.clone(), source })?;
        let found = key.key.algorithm();
        let matches = matches!(
            (expected, found),
            (KeyAlg::Rsa, rustls::SignatureAlgorithm::RSA) | (KeyAlg::Ecdsa, rustls::SignatureAlgorithm::ECDSA)
        );
        if !matches {
            return Err(TlsSetupError::WrongAlgorithm {
                identity: identity.name.clone(),
                expected,
                found: format!("{found:?}"),
            });
        }
        let key = Arc::new(key);
        let versions: &[&'static rustls::SupportedProtocolVersion] =
            if self.tls13 { &[&rustls::version::TLS12, &rustls::version::TLS13] } else { &[&rustls::version::TLS12] };
        let builder = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(versions)
            .map_err(|source| TlsSetupError::Key { identity: identity.name.clone(), source })?;
        let builder = match &self.verifier {
            Some(v) => builder.with_client_cert_verifier(v.clone()),
            None => builder.with_no_client_auth(),
        };
        // The choice was already made from the ClientHello: this config presents only this key.
        let mut config = builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key.clone())));
        config.key_log = self.key_log.clone();
        Ok(Served { name: identity.name.clone(), alg: expected, key, config: Arc::new(config) })
    }

    pub(crate) fn service_tls(
        &self,
        rsa: Option<&Identity>,
        ecdsa: Option<&Identity>,
    ) -> Result<ServiceTls, TlsSetupError> {
        Ok(ServiceTls {
            rsa: rsa.map(|i| self.load(i, KeyAlg::Rsa)).transpose()?,
            ecdsa: ecdsa.map(|i| self.load(i, KeyAlg::Ecdsa)).transpose()?,
        })
    }
}

fn client_verifier(
    provider: &Arc<CryptoProvider>,
    client_auth: &ClientAuth,
    clock: Option<UnixTime>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, TlsSetupError> {
    let (trust, mandatory) = match client_auth {
        ClientAuth::Off => return Ok(None),
        ClientAuth::Request { trust } => (trust, false),
        ClientAuth::Require { trust } => (trust, true),
    };
    let mut roots = RootCertStore::empty();
    for cert in trust {
        roots.add(cert.clone()).map_err(TlsSetupError::Trust)?;
    }
    let hints = roots.subjects();
    let chain_check = if mandatory {
        if roots.is_empty() {
            return Err(TlsSetupError::NoTrust);
        }
        let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsSetupError::Trust(Error::General(e.to_string())))?;
        Some(v)
    } else {
        None
    };
    Ok(Some(Arc::new(TrustHintVerifier { hints, chain_check, provider: provider.clone(), clock })))
}

/// The 6972 verifier: always sends a CertificateRequest whose acceptable CA names are the trust
/// certificates' subjects. With `chain_check` (`Require`) a certificate must chain to them; without
/// it (`Request`) any certificate or none is accepted, as CUCM's TFTP does, and only recorded.
#[derive(Debug)]
struct TrustHintVerifier {
    hints: Vec<DistinguishedName>,
    chain_check: Option<Arc<dyn ClientCertVerifier>>,
    provider: Arc<CryptoProvider>,
    /// The time client certificates are checked at; the real clock when `None`.
    clock: Option<UnixTime>,
}

impl ClientCertVerifier for TrustHintVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.chain_check.is_some()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match &self.chain_check {
            Some(v) => v.verify_client_cert(end_entity, intermediates, self.clock.unwrap_or(now)),
            None => Ok(ClientCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// An alert description as Wireshark's TLS dissector names it (`Unknown CA`).
pub(crate) fn alert_name(alert: AlertDescription) -> String {
    let name = match alert {
        AlertDescription::CloseNotify => "Close Notify",
        AlertDescription::UnexpectedMessage => "Unexpected Message",
        AlertDescription::BadRecordMac => "Bad Record MAC",
        AlertDescription::RecordOverflow => "Record Overflow",
        AlertDescription::HandshakeFailure => "Handshake Failure",
        AlertDescription::BadCertificate => "Bad Certificate",
        AlertDescription::UnsupportedCertificate => "Unsupported Certificate",
        AlertDescription::CertificateRevoked => "Certificate Revoked",
        AlertDescription::CertificateExpired => "Certificate Expired",
        AlertDescription::CertificateUnknown => "Certificate Unknown",
        AlertDescription::IllegalParameter => "Illegal Parameter",
        AlertDescription::UnknownCA => "Unknown CA",
        AlertDescription::AccessDenied => "Access Denied",
        AlertDescription::DecodeError => "Decode Error",
        AlertDescription::DecryptError => "Decrypt Error",
        AlertDescription::ProtocolVersion => "Protocol Version",
        AlertDescription::InsufficientSecurity => "Insufficient Security",
        AlertDescription::InternalError => "Internal Error",
        AlertDescription::UserCanceled => "User Canceled",
        AlertDescription::NoRenegotiation => "No Renegotiation",
        AlertDescription::MissingExtension => "Missing Extension",
        AlertDescription::UnsupportedExtension => "Unsupported Extension",
        AlertDescription::UnrecognisedName => "Unrecognized Name",
        AlertDescription::CertificateRequired => "Certificate Required",
        AlertDescription::NoApplicationProtocol => "No Application Protocol",
        other => return format!("{other:?}"),
    };
    name.to_owned()
}

/// The alert rustls sends for a handshake error, when it is one we can name (mirrors rustls'
/// own mapping for the certificate errors that matter here).
fn alert_sent_for(error: &Error) -> Option<AlertDescription> {
    match error {
        Error::InvalidCertificate(e) => Some(match e {
            CertificateError::BadEncoding
            | CertificateError::UnhandledCriticalExtension
            | CertificateError::NotValidForName
            | CertificateError::NotValidForNameContext { .. } => AlertDescription::BadCertificate,
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => AlertDescription::CertificateExpired,
            CertificateError::Revoked => AlertDescription::CertificateRevoked,
            CertificateError::UnknownIssuer => AlertDescription::UnknownCA,
            CertificateError::BadSignature => AlertDescription::DecryptError,
            _ => AlertDescription::CertificateUnknown,
        }),
        Error::NoCertificatesPresented => Some(AlertDescription::CertificateRequired),
        Error::PeerIncompatible(_) => Some(AlertDescription::HandshakeFailure),
        Error::InvalidMessage(_) => Some(AlertDescription::DecodeError),
        _ => None,
    }
}

/// A handshake error in a deterministic, lowercase sentence, naming any alert sent.
pub(crate) fn describe_error(error: &Error) -> String {
    let text = match error {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "client certificate does not chain to the trust (unknown issuer)".to_owned()
        }
        Error::InvalidCertificate(e) => format!("client certificate rejected: {e:?}"),
        Error::NoCertificatesPresented => "client sent no certificate".to_owned(),
        other => other.to_string(),
    };
    match alert_sent_for(error) {
        Some(alert) => format!("{text}; sent alert {}", alert_name(alert)),
        None => text,
    }
}

/// A certificate's subject as OpenSSL's `-nameopt` comma form shows it, or a note when the
/// bytes do not parse (peer bytes never panic).
pub(crate) fn subject_of(cert: &CertificateDer<'_>) -> String {
    match x509_parser::parse_x509_certificate(cert.as_ref()) {
        Ok((_, parsed)) => parsed.subject().to_string(),
        Err(_) => "(unparseable certificate)".to_owned(),
    }
}
