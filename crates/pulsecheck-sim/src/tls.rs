//! Certificates generated at start, and the rustls server configs using them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The sim's CA (PEM) and one server config per TLS listener.
pub(crate) struct Certs {
    pub(crate) ca_pem: String,
    pub(crate) valid: Arc<rustls::ServerConfig>,
    pub(crate) expired: Arc<rustls::ServerConfig>,
    pub(crate) self_signed: Arc<rustls::ServerConfig>,
}

impl Certs {
    /// A fresh CA, a valid and an expired leaf signed by it, and a self-signed leaf.
    /// `bind` addresses are added to the valid leaf's names.
    pub(crate) fn generate(bind: &[IpAddr]) -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate().context("CA key")?;
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = name("pulsecheck-sim test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).context("CA certificate")?;
        let ca_pem = ca_cert.pem();
        let ca = Issuer::new(ca_params, ca_key);

        let mut names = vec![
            SanType::DnsName("localhost".try_into()?),
            SanType::DnsName("pulsecheck.test".try_into()?),
            SanType::DnsName("*.pulsecheck.test".try_into()?),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ];
        for ip in bind {
            let san = SanType::IpAddress(*ip);
            if !names.contains(&san) {
                names.push(san);
            }
        }

        let valid_key = KeyPair::generate().context("server key")?;
        // A realistic lifetime, so --min-cert-days has something to measure: 90 days left.
        let mut valid_params = leaf_params("pulsecheck-sim valid", names.clone());
        let now = time::OffsetDateTime::now_utc();
        valid_params.not_before = now - time::Duration::days(1);
        valid_params.not_after = now + time::Duration::days(90);
        let valid_cert = valid_params.signed_by(&valid_key, &ca).context("valid certificate")?;

        let expired_key = KeyPair::generate().context("server key")?;
        let mut expired_params = leaf_params("pulsecheck-sim expired", names);
        expired_params.not_before = date_time_ymd(2020, 1, 1);
        expired_params.not_after = date_time_ymd(2021, 1, 1);
        let expired_cert = expired_params
            .signed_by(&expired_key, &ca)
            .context("expired certificate")?;

        let self_key = KeyPair::generate().context("server key")?;
        let self_cert = leaf_params(
            "pulsecheck-sim self-signed",
            vec![
                SanType::DnsName("localhost".try_into()?),
                SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ],
        )
        .self_signed(&self_key)
        .context("self-signed certificate")?;

        Ok(Self {
            ca_pem,
            valid: server_config(valid_cert.der().clone(), &valid_key)?,
            expired: server_config(expired_cert.der().clone(), &expired_key)?,
            self_signed: server_config(self_cert.der().clone(), &self_key)?,
        })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "pulsecheck-sim");
    dn
}

fn leaf_params(common_name: &str, names: Vec<SanType>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.subject_alt_names = names;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params
}

fn server_config(cert: CertificateDer<'static>, key: &KeyPair) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
