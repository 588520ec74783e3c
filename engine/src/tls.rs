//! Certificates a TLS client trusts: a private authority's PEM file (`ca_file` of an https
//! webhook, a farm's NATS over TLS), read once when the configuration loads and again where a
//! connection is made.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Why a CA file gives no certificates.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{}: no PEM certificate in it", path.display())]
    Empty { path: std::path::PathBuf },
}

/// The certificates of a PEM file.
pub fn read_ca(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let read = |source| CaError::Read {
        path: path.to_path_buf(),
        source,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<_, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(CaError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}
