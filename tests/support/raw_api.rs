//! A hostile API on 127.0.0.1, for tests: it reads each request, answers it with the next of
//! the bytes it was given, verbatim (a well-formed HTTP response or not), and closes the
//! connection. Once the answers run out it closes without answering. It records each request
//! line, so a test can check what the component asked for.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The most a request (head and body) may take.
const MAX_REQUEST: usize = 64 * 1024;

/// A running server; dropping it stops it.
pub struct RawApi {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl RawApi {
    /// Starts a server that gives `answers` in order, one a connection.
    pub async fn start(answers: Vec<Vec<u8>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
        let task = tokio::spawn({
            let requests = requests.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (requests, answers) = (requests.clone(), answers.clone());
                    tokio::spawn(async move {
                        let _ = answer(stream, &requests, &answers).await;
                    });
                }
            }
        });
        Self {
            port,
            requests,
            task,
        }
    }

    /// The server's origin, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request line of every request read so far, e.g. `GET /api/machineactions/x HTTP/1.1`.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for RawApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    mut stream: TcpStream,
    requests: &Mutex<Vec<String>>,
    answers: &Mutex<VecDeque<Vec<u8>>>,
) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 || request.len() + read > MAX_REQUEST {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < head_end + length.min(MAX_REQUEST) {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..read]);
    }
    let line = head.lines().next().unwrap_or_default().to_owned();
    requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(line);
    let next = answers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop_front();
    if let Some(bytes) = next {
        stream.write_all(&bytes).await?;
    }
    stream.shutdown().await
}
