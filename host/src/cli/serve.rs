//! `sluice serve`: the HTTP API over a root (see `sluice_host::serve` and docs/API.md).

use super::RootArg;
use anyhow::{Context, Result};
use sluice_host::serve::{self, ServeOptions};
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    root: RootArg,
    /// Address and port to listen on. Beyond loopback every route but /health needs the
    /// root's API token. Default: the root's [server] listen, else 127.0.0.1:8750.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// The largest upload accepted, in MB. Default: the root's [server] max_upload_mb, else
    /// 2048.
    #[arg(long, value_name = "MB")]
    max_upload_mb: Option<u64>,
    /// Uploads received at once (one more is answered 429). Default: the root's [server]
    /// max_uploads, else 8.
    #[arg(long, value_name = "N")]
    max_uploads: Option<usize>,
    /// Seconds a client may send nothing (its request head, or upload data) before it is
    /// disconnected. Default: the root's [server] request_timeout, else 30.
    #[arg(long, value_name = "SECS")]
    request_timeout: Option<u64>,
    /// Connections open at once (one more is closed at once). Default: the root's [server]
    /// max_connections, else 1024.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Seconds an analysis asked for over HTTP may run before it is stopped and answered 503
    /// `time_limit`. Default: the root's [server] work_limit, else 600.
    #[arg(long, value_name = "SECS")]
    work_limit: Option<u64>,
    /// A web origin allowed to call the API from a browser (CORS), as
    /// https://app.example.com; repeat for several. Default: the root's [server] cors_origins,
    /// else none.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Print the OpenAPI document and exit.
    #[arg(long)]
    openapi: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.openapi {
        println!("{}", serve::openapi_json());
        return Ok(ExitCode::SUCCESS);
    }
    let root = sluice_host::config::root_from(a.root.root.as_deref())?;
    std::fs::create_dir_all(&root).with_context(|| root.display().to_string())?;
    // A new root is made ready as `sluice watch` makes it: its configuration and the example
    // pipelines (the dashboard's pipeline list and its submit box use them). Said on stderr:
    // the first line on stdout is the address the server listens on.
    if sluice_host::commands::init_root(&root)? {
        eprintln!(
            "sluice: made a new root at {} with example pipelines (podcast, streaming-master, broadcast, analysis, archive)",
            root.display()
        );
    }
    let cfg = a.root.config()?;
    let cors_origins = if a.cors_origins.is_empty() {
        cfg.server
            .as_ref()
            .map(|s| s.cors_origins.clone())
            .unwrap_or_default()
    } else {
        a.cors_origins
            .iter()
            .map(|o| {
                sluice_host::config::check_origin(o)
                    .map_err(|e| anyhow::anyhow!("--cors-origin: {e}"))
            })
            .collect::<Result<_>>()?
    };
    let defaults = cfg
        .server
        .as_ref()
        .map(ServeOptions::from_config)
        .unwrap_or_default();
    let request_timeout = match a.request_timeout {
        Some(s) if !(1..=3600).contains(&s) => {
            anyhow::bail!("--request-timeout {s}: give 1 to 3600 seconds")
        }
        Some(s) => std::time::Duration::from_secs(s),
        None => defaults.request_timeout,
    };
    let max_connections = match a.max_connections {
        Some(n) if !(16..=65_536).contains(&n) => {
            anyhow::bail!("--max-connections {n}: give 16 to 65536")
        }
        Some(n) => n,
        None => defaults.max_connections,
    };
    let work_limit = match a.work_limit {
        Some(s) if !(1..=86_400).contains(&s) => {
            anyhow::bail!("--work-limit {s}: give 1 to 86400 seconds")
        }
        Some(s) => std::time::Duration::from_secs(s),
        None => defaults.work_limit,
    };
    let max_upload_bytes = match a.max_upload_mb {
        Some(0) => anyhow::bail!("--max-upload-mb 0: give at least 1"),
        Some(mb) => mb.saturating_mul(1_000_000),
        None => defaults.max_upload_bytes,
    };
    let max_uploads = match a.max_uploads {
        Some(n) if !(1..=1024).contains(&n) => anyhow::bail!("--max-uploads {n}: give 1 to 1024"),
        Some(n) => n,
        None => defaults.max_uploads,
    };
    let opts = ServeOptions {
        listen: a.listen.unwrap_or(defaults.listen),
        max_upload_bytes,
        max_uploads,
        cors_origins,
        request_timeout,
        max_connections,
        work_limit,
    };
    serve::run(&cfg, &opts, &notice)?;
    Ok(ExitCode::SUCCESS)
}

/// A server's notice, printed: the address on standard output (a script reads its first line),
/// the rest on standard error.
pub fn notice(n: serve::Notice) {
    use serve::Notice;
    match n {
        Notice::Swept(n) => {
            eprintln!("sluice serve: removed {n} temporary file(s) left by a stopped process")
        }
        Notice::BatchInterrupted(id) => eprintln!(
            "sluice serve: batch {id} was cut off by a stop: pending again (process it to finish)"
        ),
        Notice::Listening {
            addr,
            token_file,
            new_token,
        } => {
            super::say(format!("listening on http://{addr}"));
            match new_token {
                Some(token) => eprintln!(
                    "sluice: a new API token, kept in {} (changes need it as `Authorization: Bearer TOKEN`):\n{token}\nthe dashboard, signed in: http://{addr}/#token={token}",
                    token_file.display()
                ),
                None => eprintln!(
                    "sluice: the dashboard is at http://{addr}/ (the API token is in {})",
                    token_file.display()
                ),
            }
        }
        Notice::CutOff => {
            eprintln!("sluice: requests still under way 5 s after the stop were cut off")
        }
    }
}
