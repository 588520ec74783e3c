//! Webhooks (`[[server.webhook]]` in sluice.toml): each job event of the kinds a webhook asks
//! for is posted to its URL as JSON, signed with its secret (`X-Sluice-Signature:
//! sha256=HEX`, HMAC-SHA256 of the body), and retried with backoff (0.5, 1, 2, 4, 8 s) when
//! the receiver fails or cannot be reached.
//!
//! Delivery follows the state database's event log with a cursor per webhook kept in the
//! store, so events that happen while no server runs are posted when one starts again, in
//! order, each once per success (a receiver may see an event twice if the server stops between
//! its success and the cursor's write: `X-Sluice-Delivery` is the event's id, to de-duplicate).
//! One process per root delivers (it holds `.sluice/webhooks.lock`).
//!
//! An `https://` receiver is reached over TLS (rustls: TLS 1.2 or 1.3), its certificate
//! checked against the system's trusted roots, or against the webhook's `ca_file` for a
//! receiver whose certificate a private authority signed; a certificate that does not check
//! out gets nothing (each attempt logs why).

use super::AppState;
use super::v1::{EventView, JobView};
use crate::config::Webhook;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// Delays before the retries of a failed delivery.
const BACKOFF_MS: [u64; 5] = [500, 1_000, 2_000, 4_000, 8_000];

/// `sha256=HEX` of HMAC-SHA256(secret, body).
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let sum = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        sum.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// What [`spawn`] needs: the root's webhook lock, held while delivering.
pub(crate) struct Prepared {
    held: Arc<std::fs::File>,
    hooks: Vec<Webhook>,
}

/// Takes the root's webhook lock and fixes each new webhook's cursor at the newest event,
/// before the server answers anything: what happens from then on is delivered. `None` when
/// there are no webhooks or another process delivers them.
pub(crate) fn prepare(st: &AppState, hooks: &[Webhook]) -> Option<Prepared> {
    if hooks.is_empty() {
        return None;
    }
    let lock = st.root.join(".sluice").join("webhooks.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock);
    let held = match file {
        Ok(f) => match f.try_lock() {
            Ok(()) => f,
            Err(_) => {
                tracing::warn!(
                    "another process on this root delivers its webhooks ({} is held)",
                    lock.display()
                );
                return None;
            }
        },
        Err(e) => {
            tracing::error!("webhooks not delivered: {}: {e}", lock.display());
            return None;
        }
    };
    for h in hooks {
        let key = format!("webhook:{}", h.url);
        let first = st.store.meta(&key).and_then(|c| match c {
            Some(_) => Ok(()),
            None => st.store.set_meta(&key, st.store.last_event_id()?),
        });
        if let Err(e) = first {
            tracing::error!("webhook {}: {e}", h.url);
        }
    }
    Some(Prepared {
        held: Arc::new(held),
        hooks: hooks.to_vec(),
    })
}

/// Starts delivering, one task per webhook.
pub(crate) fn spawn(st: &Arc<AppState>, prepared: Prepared) {
    for h in prepared.hooks {
        let (st, held) = (Arc::downgrade(st), Arc::clone(&prepared.held));
        tokio::spawn(async move {
            let _held = held;
            deliver_all(st, h).await;
        });
    }
}

async fn deliver_all(weak: std::sync::Weak<AppState>, hook: Webhook) {
    let key = format!("webhook:{}", hook.url);
    // Made once per webhook (the system's roots read once).
    let tls = if hook.url.starts_with("https://") {
        match tls_for(&hook) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!("webhook {}: {e}: not delivered", hook.url);
                return;
            }
        }
    } else {
        None
    };
    let mut closing = match weak.upgrade() {
        Some(st) => st.closing.clone(),
        None => return,
    };
    loop {
        let Some(st) = weak.upgrade() else { return };
        if *closing.borrow() {
            return;
        }
        let (st2, key2) = (Arc::clone(&st), key.clone());
        // The cursor, or (the first time) the newest event: history is not replayed.
        let read = tokio::task::spawn_blocking(move || {
            let cursor = match st2.store.meta(&key2)? {
                Some(c) => c,
                None => {
                    let last = st2.store.last_event_id()?;
                    st2.store.set_meta(&key2, last)?;
                    last
                }
            };
            let events = st2.store.events_after(cursor, 100)?;
            let mut out = Vec::new();
            for e in events {
                let job = match e.job {
                    Some(id) => st2.store.job(id)?,
                    None => None,
                };
                out.push((e, job));
            }
            Ok::<_, crate::store::StoreError>(out)
        })
        .await;
        let events = match read {
            Ok(Ok(ev)) => ev,
            Ok(Err(e)) => {
                tracing::warn!("webhook {}: reading events: {e}", hook.url);
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        let idle = events.is_empty();
        for (e, job) in events {
            if hook.events.contains(&e.kind) && e.job.is_some() {
                let body = serde_json::json!({
                    "event": e.kind,
                    "delivery": e.id,
                    "event_detail": EventView::from(&e),
                    "job": job.as_ref().map(JobView::from),
                });
                let body = body.to_string();
                let mut delivered = false;
                for (attempt, wait) in std::iter::once(0).chain(BACKOFF_MS).enumerate() {
                    if wait > 0 {
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(wait)) => {}
                            _ = closing.changed() => return,
                        }
                    }
                    match post(&hook, tls.as_ref(), e.kind.name(), e.id, &body).await {
                        Ok(()) => {
                            delivered = true;
                            break;
                        }
                        Err(why) => tracing::warn!(
                            "webhook {}: event {} ({}), attempt {}: {why}",
                            hook.url,
                            e.id,
                            e.kind,
                            attempt + 1
                        ),
                    }
                }
                if !delivered {
                    tracing::error!(
                        "webhook {}: event {} ({}) not delivered after {} attempts: given up",
                        hook.url,
                        e.id,
                        e.kind,
                        BACKOFF_MS.len() + 1
                    );
                }
            }
            let (st2, key2, id) = (Arc::clone(&st), key.clone(), e.id);
            let _ = tokio::task::spawn_blocking(move || st2.store.set_meta(&key2, id)).await;
        }
        drop(st);
        if idle {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = closing.changed() => return,
            }
        }
    }
}

/// Why an https:// webhook has no TLS configuration.
#[derive(Debug, thiserror::Error)]
enum TlsSetupError {
    #[error(transparent)]
    Ca(#[from] crate::tls::CaError),
    #[error("ca_file {}: {source}", path.display())]
    Refused {
        path: std::path::PathBuf,
        source: tokio_rustls::rustls::Error,
    },
    #[error(
        "no trusted root certificates on this system (install ca-certificates, or give the webhook a ca_file)"
    )]
    NoRoots,
    #[error("{0}")]
    Protocols(tokio_rustls::rustls::Error),
}

/// What an https:// webhook is reached with: the system's roots, or its `ca_file`'s.
fn tls_for(hook: &Webhook) -> Result<tokio_rustls::TlsConnector, TlsSetupError> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    match &hook.ca_file {
        Some(path) => {
            for c in crate::tls::read_ca(path)? {
                roots.add(c).map_err(|source| TlsSetupError::Refused {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(TlsSetupError::NoRoots);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(TlsSetupError::Protocols)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Why one delivery failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("{0}")]
    Url(#[from] hyper::http::uri::InvalidUri),
    #[error("no host")]
    NoHost,
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error("no TLS configuration for an https:// webhook")]
    NoTls,
    #[error("{host}: {source}")]
    ServerName {
        host: String,
        source: tokio_rustls::rustls::pki_types::InvalidDnsNameError,
    },
    #[error("TLS with {host}: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("{0}")]
    Request(#[from] hyper::http::Error),
    #[error("the receiver answered {0}")]
    Status(hyper::StatusCode),
    #[error("no answer within 10 s")]
    Timeout,
}

/// One POST; a 2xx answer within 10 s is a success.
async fn post(
    hook: &Webhook,
    tls: Option<&tokio_rustls::TlsConnector>,
    kind: &str,
    id: u64,
    body: &str,
) -> Result<(), DeliveryError> {
    let uri: hyper::Uri = hook.url.parse()?;
    let host = uri.host().ok_or(DeliveryError::NoHost)?.to_string();
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(DeliveryError::Connect)?;
        let mut send = if https {
            let tls = tls.ok_or(DeliveryError::NoTls)?;
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
            .map_err(|source| DeliveryError::ServerName {
                host: host.clone(),
                source,
            })?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|source| DeliveryError::Tls {
                    host: host.clone(),
                    source,
                })?;
            handshake(stream).await?
        } else {
            handshake(tcp).await?
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let req = hyper::Request::post(path)
            .header(
                hyper::header::HOST,
                uri.authority().map_or(host.clone(), |a| a.to_string()),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("sluice/", env!("CARGO_PKG_VERSION")),
            )
            .header("X-Sluice-Event", kind)
            .header("X-Sluice-Delivery", id.to_string())
            .header(
                "X-Sluice-Signature",
                signature(&hook.secret, body.as_bytes()),
            )
            .body(Full::new(Bytes::from(body.to_string())))?;
        let res = send.send_request(req).await?;
        let status = res.status();
        let _ = res.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(status))
        }
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .map_err(|_| DeliveryError::Timeout)?
}

/// An HTTP/1.1 client connection over `io` (its driving task spawned).
async fn handshake<IO>(
    io: IO,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, DeliveryError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
    tokio::spawn(conn);
    Ok(send)
}
