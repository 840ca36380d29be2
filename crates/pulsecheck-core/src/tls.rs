//! TLS client setup (rustls with the ring provider and webpki roots) and certificate facts.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::result::{CertificateInfo, Reason};

/// The TLS client configurations every check shares (one per verification mode).
#[derive(Clone)]
pub struct TlsClients {
    pub verifying: Arc<ClientConfig>,
    pub insecure: Arc<ClientConfig>,
}

/// Extra trust anchors could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{path}: {message}")]
    CaFile { path: String, message: String },
    #[error("cannot build the TLS client: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsClients {
    /// Trusts the webpki roots plus the PEM certificates in `extra_ca_pem`.
    pub fn new(extra_ca: &[CertificateDer<'static>]) -> Result<TlsClients, TlsSetupError> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra_ca {
            roots.add(cert.clone())?;
        }
        let alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut verifying = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        verifying.alpn_protocols = alpn.clone();
        let mut insecure = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth();
        insecure.alpn_protocols = alpn;
        Ok(TlsClients {
            verifying: Arc::new(verifying),
            insecure: Arc::new(insecure),
        })
    }

    pub fn config(&self, insecure: bool) -> Arc<ClientConfig> {
        if insecure {
            self.insecure.clone()
        } else {
            self.verifying.clone()
        }
    }
}

/// Reads PEM certificates (a `--cacert` file).
pub fn load_pem_certificates(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    use rustls_pki_types::pem::PemObject;
    let fail = |message: String| TlsSetupError::CaFile {
        path: path.display().to_string(),
        message,
    };
    let data = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| fail(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(fail(
            "holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// `--insecure`: accept any certificate, but still check handshake signatures so the
/// connection is a real TLS session whose certificate we can report.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The leaf subject and the earliest expiry in the presented chain.
pub fn certificate_info(chain: &[CertificateDer<'_>]) -> Option<CertificateInfo> {
    let mut subject = None;
    let mut earliest: Option<i64> = None;
    for der in chain {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
            continue;
        };
        if subject.is_none() {
            subject = Some(cert.subject().to_string());
        }
        let not_after = cert.validity().not_after.timestamp();
        earliest = Some(earliest.map_or(not_after, |e| e.min(not_after)));
    }
    let not_after = jiff::Timestamp::from_second(earliest?).ok()?;
    let seconds_left = not_after.as_second() - jiff::Timestamp::now().as_second();
    Some(CertificateInfo {
        subject: subject.unwrap_or_default(),
        not_after: not_after.to_string(),
        days_left: seconds_left.div_euclid(86_400),
    })
}

/// Splits TLS failures into certificate problems and other handshake failures.
pub fn classify_tls_error(error: &std::io::Error) -> Option<(Reason, String)> {
    let inner = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    let reason = match inner {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => Reason::Certificate,
        _ => Reason::Tls,
    };
    Some((reason, format!("TLS handshake failed: {inner}")))
}

/// SNI for a host; IP addresses are allowed (rustls then matches IP SANs).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned()).map_err(|e| format!("'{host}' is not a valid TLS server name: {e}"))
}
