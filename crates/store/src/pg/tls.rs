//! TLS to PostgreSQL, with libpq's `sslmode` and `sslrootcert` in the database URL, so that
//! the URL a provider hands out works as it does with `psql`:
//!
//! | `sslmode`            | TLS                         | the server's certificate           |
//! |----------------------|-----------------------------|------------------------------------|
//! | `disable`            | never                       |                                    |
//! | `prefer` (default)   | when the server offers it   | not checked (as libpq)             |
//! | `require`            | always                      | not checked (as libpq)             |
//! | `verify-ca`          | always                      | signed by a trusted root           |
//! | `verify-full`        | always                      | signed by a trusted root, for the host |
//!
//! The trusted roots are the system's, or those in the file `sslrootcert` names (PEM).
//! tokio-postgres itself knows only the first three modes and no `sslrootcert`; this module
//! takes both out of the URL and sets the rest up with rustls (the TLS library the bucket's
//! client uses already) through `tokio-postgres-rustls`.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::StoreError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// What the URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tls {
    pub(super) mode: Mode,
    /// `sslrootcert`: a PEM file of the roots to trust instead of the system's.
    pub(super) roots: Option<PathBuf>,
}

fn invalid(why: String) -> StoreError {
    StoreError::invalid("database url", &why)
}

impl Tls {
    /// Takes `sslmode` and `sslrootcert` out of a database URL (either form: `postgres://…?…`
    /// or `key=value …`); answers the rest, for tokio-postgres, and what they asked.
    pub(super) fn split(url: &str) -> Result<(String, Tls), StoreError> {
        let mut tls = Tls {
            mode: Mode::Prefer,
            roots: None,
        };
        let mut take = |key: &str, value: &str| -> Result<bool, StoreError> {
            match key {
                "sslmode" => {
                    tls.mode = match value {
                        "disable" => Mode::Disable,
                        "allow" | "prefer" => Mode::Prefer,
                        "require" => Mode::Require,
                        "verify-ca" => Mode::VerifyCa,
                        "verify-full" => Mode::VerifyFull,
                        other => {
                            return Err(invalid(format!(
                                "an sslmode of disable, prefer, require, verify-ca or \
                                 verify-full, not {other:?}"
                            )))
                        }
                    };
                    Ok(true)
                }
                "sslrootcert" => {
                    tls.roots = (value != "system").then(|| PathBuf::from(value));
                    Ok(true)
                }
                _ => Ok(false),
            }
        };
        let rest = if let Some((base, query)) = url
            .split_once('?')
            .filter(|_| url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let value = percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .map_err(|_| invalid(format!("UTF-8 in the URL's {key}")))?;
                if !take(key, &value)? {
                    kept.push(pair);
                }
            }
            if kept.is_empty() {
                base.to_owned()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        } else if url.contains("://") {
            url.to_owned()
        } else {
            // The pairs are taken out of the text as they stand, so that the others (a
            // quoted password with spaces in it, say) reach tokio-postgres untouched.
            let mut rest = String::with_capacity(url.len());
            let mut at = 0;
            for (start, end) in pairs(url) {
                let pair = &url[start..end];
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                if take(key.trim(), value.trim().trim_matches('\''))? {
                    rest.push_str(url[at..start].trim_end());
                    at = end;
                }
            }
            rest.push_str(&url[at..]);
            rest.trim().to_owned()
        };
        Ok((rest, tls))
    }

    /// tokio-postgres's mode for this one.
    pub(super) fn ssl_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }

    /// The connector: rustls, checking the server's certificate as the mode says.
    pub(super) fn connector(&self) -> Result<MakeRustlsConnect, StoreError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
            Mode::Disable | Mode::Prefer | Mode::Require => Arc::new(Unchecked(provider.clone())),
            Mode::VerifyCa | Mode::VerifyFull => {
                let roots = Arc::new(self.root_store()?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| invalid(format!("usable root certificates ({e})")))?;
                if self.mode == Mode::VerifyFull {
                    webpki
                } else {
                    Arc::new(AnyName(webpki))
                }
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("a TLS setup ({e})")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }

    /// The roots to trust: `sslrootcert`'s, or the system's.
    fn root_store(&self) -> Result<RootCertStore, StoreError> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        invalid(format!(
                            "an sslrootcert that is a PEM file of certificates ({}: {e})",
                            path.display()
                        ))
                    })?;
                let (added, _) = store.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(invalid(format!(
                        "an sslrootcert with a certificate in it ({})",
                        path.display()
                    )));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                store.add_parsable_certificates(found.certs);
                if store.is_empty() {
                    return Err(invalid(
                        "the system's root certificates for sslmode=verify-ca or verify-full \
                         (none were found; install ca-certificates, or name a file with \
                         sslrootcert)"
                            .into(),
                    ));
                }
            }
        }
        Ok(store)
    }
}

/// Where each `key=value` pair of a key=value connection string stands (byte ranges): pairs
/// are separated by white space outside single quotes, and `\'` is a quote inside them.
fn pairs(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (None, false, false);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '\'' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if let Some(s) = start.take() {
                    out.push((s, i));
                }
                continue;
            }
            _ => {}
        }
        start.get_or_insert(i);
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// `prefer` and `require`: the connection is encrypted, and the server's certificate not
/// checked, as libpq does in these modes. The handshake's signatures are still verified.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name in the certificate may be
/// another host's.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_modes_and_roots_come_out_of_both_url_forms() {
        let (rest, tls) = Tls::split(
            "postgres://u:p@db.example.com:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p@db.example.com:5432/app?application_name=x"
        );
        assert_eq!(tls.mode, Mode::VerifyFull);
        assert_eq!(tls.roots, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(tls.ssl_mode(), SslMode::Require);

        let (rest, tls) = Tls::split("postgresql://h/db?sslmode=require").unwrap();
        assert_eq!(
            (rest.as_str(), tls.mode),
            ("postgresql://h/db", Mode::Require)
        );
        let (rest, tls) = Tls::split("postgres://h/db").unwrap();
        assert_eq!((rest.as_str(), tls.mode), ("postgres://h/db", Mode::Prefer));

        let (rest, tls) =
            Tls::split("host=h dbname=d sslmode=verify-ca sslrootcert=system user=u").unwrap();
        assert_eq!(rest, "host=h dbname=d user=u");
        assert_eq!((tls.mode, tls.roots), (Mode::VerifyCa, None));

        let (rest, tls) =
            Tls::split("host=h password='a b\\' sslmode=disable' sslmode=require").unwrap();
        assert_eq!(rest, "host=h password='a b\\' sslmode=disable'");
        assert_eq!(tls.mode, Mode::Require);

        assert!(Tls::split("postgres://h/db?sslmode=sometimes").is_err());
        let missing = Tls {
            mode: Mode::VerifyFull,
            roots: Some(PathBuf::from("/nonexistent/ca.pem")),
        };
        assert!(missing.connector().is_err());
        for mode in [Mode::Disable, Mode::Prefer, Mode::Require] {
            let tls = Tls { mode, roots: None };
            assert!(tls.connector().is_ok(), "{mode:?}");
        }
    }
}
