//! A `redis-server` of a test's own: on a free port of 127.0.0.1, in a directory of its own,
//! saving nothing, stopped when dropped. A test that needs one and cannot start it panics with
//! the reason: it never passes without the server it is about.
#![deny(missing_docs)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `redis-server`, stopped (and its directory removed) when dropped.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Whether it keeps its data across a kill (an append-only file, synced each write).
    persistent: bool,
}

impl RedisServer {
    /// Starts a server on a free port.
    ///
    /// # Panics
    /// When `redis-server` is not installed or does not answer: the test needs it.
    pub fn start() -> Self {
        Self::try_start(false).unwrap_or_else(|e| {
            panic!(
                "this test needs redis-server on the PATH and could not start it ({e}); \
                 install it (`apt-get install -y redis-server`; .ci/run does)"
            )
        })
    }

    /// Starts a server on a free port; `persistent`, it keeps its data across
    /// [`RedisServer::kill`] and [`RedisServer::resume`], as a production Redis with an
    /// append-only file does.
    pub fn try_start(persistent: bool) -> std::io::Result<Self> {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("local-redis-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self {
            port: free_port()?,
            dir,
            child: None,
            persistent,
        };
        server.try_resume()?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server at once (`SIGKILL`), as a crash would; its port stays free for
    /// [`RedisServer::resume`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port: empty, unless it is persistent.
    ///
    /// # Panics
    /// When it cannot be started or does not answer within ten seconds.
    pub fn resume(&mut self) {
        if let Err(e) = self.try_resume() {
            panic!(
                "redis-server on port {} could not be started again: {e}",
                self.port
            );
        }
    }

    /// Starts the server again on the same port, or says why it could not.
    pub fn try_resume(&mut self) -> std::io::Result<()> {
        self.kill();
        let append_only = if self.persistent { "yes" } else { "no" };
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                append_only,
                "--appendfsync",
                "always",
            ])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        self.child = Some(child);
        let since = Instant::now();
        while !self.answers() {
            if since.elapsed() > START_TIMEOUT {
                let message = format!(
                    "redis-server on port {} did not answer PING in {START_TIMEOUT:?}",
                    self.port
                );
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, message));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Whether the server answers `PING` with `PONG`.
    fn answers(&self) -> bool {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut answer = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut answer).is_ok()
            && &answer == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free now on 127.0.0.1 (the listener is closed before the server takes it).
fn free_port() -> std::io::Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
}
