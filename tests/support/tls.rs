//! A certificate authority made for one test, and server certificates it signs: valid for
//! `localhost`, for another name, or expired. The host trusts it only when told to (`ca-file`).

use defender_simulator::TlsIdentity;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

/// A test CA: its certificate (PEM) and the means to sign server certificates.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate, PEM, for a `ca-file`.
    pub pem: String,
}

/// What a server certificate should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// Valid now, for `localhost` and 127.0.0.1.
    Localhost,
    /// Valid now, for `other.test` only.
    OtherName,
    /// For `localhost`, but expired in 2001.
    Expired,
}

impl TestCa {
    /// A new CA with a fresh key.
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "host-harness test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("a CA key");
        let pem = params.self_signed(&key).expect("the CA certificate").pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A server certificate and key signed by this CA.
    pub fn server(&self, leaf: Leaf) -> TlsIdentity {
        let names = match leaf {
            Leaf::OtherName => vec!["other.test".to_owned()],
            _ => vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
        };
        let mut params = CertificateParams::new(names).expect("server parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, "simulator");
        if leaf == Leaf::Expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().expect("a server key");
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("the server certificate");
        TlsIdentity {
            certificate_chain_pem: certificate.pem().into_bytes(),
            private_key_pem: key.serialize_pem().into_bytes(),
        }
    }
}

impl TestCa {
    /// A client certificate and key signed by this CA, for mutual TLS.
    pub fn client(&self, name: &str) -> TlsIdentity {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("a client key");
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("the client certificate");
        TlsIdentity {
            certificate_chain_pem: certificate.pem().into_bytes(),
            private_key_pem: key.serialize_pem().into_bytes(),
        }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
