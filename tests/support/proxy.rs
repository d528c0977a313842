//! A small HTTP `CONNECT` proxy on 127.0.0.1, for tests: it opens tunnels only to loopback
//! addresses, can demand `Basic` credentials (407 otherwise), and counts the tunnels it opened
//! and where they went, so a test proves its traffic went through it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The most a `CONNECT` request's head may take.
const MAX_HEAD: usize = 8 * 1024;

/// A running proxy; dropping it stops it.
pub struct ConnectProxy {
    port: u16,
    credentials: Option<(String, String)>,
    tunnels: Arc<AtomicUsize>,
    targets: Arc<Mutex<Vec<String>>>,
    refused: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl ConnectProxy {
    /// Starts a proxy; with `credentials`, a tunnel needs `Proxy-Authorization: Basic` for them.
    pub async fn start(credentials: Option<(&str, &str)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let expected = credentials.as_ref().map(|(user, password)| {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        });
        let tunnels = Arc::new(AtomicUsize::new(0));
        let targets = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (tunnels, targets, refused) = (tunnels.clone(), targets.clone(), refused.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let state = (tunnels.clone(), targets.clone(), refused.clone());
                    let expected = expected.clone();
                    tokio::spawn(async move {
                        let _ = tunnel(client, expected.as_deref(), state).await;
                    });
                }
            }
        });
        Self {
            port,
            credentials,
            tunnels,
            targets,
            refused,
            task,
        }
    }

    /// The proxy's URL, with its credentials if it demands them.
    pub fn url(&self) -> String {
        match &self.credentials {
            Some((user, password)) => format!("http://{user}:{password}@127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// The proxy's URL with no credentials.
    pub fn url_without_credentials(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many tunnels it opened.
    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }

    /// How many `CONNECT`s it refused for want of credentials.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// The `host:port` of every tunnel, in order.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().expect("not poisoned").clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type State = (Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>);

async fn tunnel(
    mut client: TcpStream,
    expected: Option<&str>,
    (tunnels, targets, refused): State,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next(), parts.next().unwrap_or_default().to_owned());
    if method != Some("CONNECT") {
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, value)| value.trim().to_owned());
    if let Some(expected) = expected
        && authorization.as_deref() != Some(expected)
    {
        refused.fetch_add(1, Ordering::SeqCst);
        client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    }
    let loopback = tokio::net::lookup_host(&target)
        .await
        .map(|mut addrs| addrs.all(|a| a.ip().is_loopback()))
        .unwrap_or(false);
    let server = match loopback {
        true => TcpStream::connect(&target).await,
        false => Err(std::io::Error::other("only loopback targets")),
    };
    let Ok(mut server) = server else {
        client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    tunnels.fetch_add(1, Ordering::SeqCst);
    targets.lock().expect("not poisoned").push(target);
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
