//! A throttling TCP proxy in front of ClickHouse's HTTP port: while slow, every chunk of every
//! response is held back for a fixed delay, so each insert takes seconds as on an overloaded
//! server. Requests pass at once; nothing is dropped or reordered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct SlowProxy {
    /// `host:port` to point a client at.
    pub addr: String,
    delay_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowProxy {
    pub async fn start(upstream: &str) -> anyhow::Result<SlowProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (up, delay) = (upstream.to_string(), delay_ms.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, up.clone(), delay.clone()));
            }
        });
        Ok(SlowProxy {
            addr,
            delay_ms,
            task,
        })
    }

    /// Delays every response chunk by `delay` from now on (zero: pass-through).
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, upstream: String, delay_ms: Arc<AtomicU64>) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return; // the client sees the connection close, as if the server were down
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let requests = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match sr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if cw.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = cw.shutdown().await;
    requests.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An upstream that answers every line with the line itself.
    async fn echo_server() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(addr: &str) -> (Vec<u8>, Duration) {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let t = Instant::now();
        s.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        s.read_exact(&mut got).await.expect("read");
        (got.to_vec(), t.elapsed())
    }

    #[tokio::test]
    async fn passes_bytes_unchanged_and_holds_responses_back_only_while_slow() {
        let proxy = SlowProxy::start(&echo_server().await).await.expect("proxy");
        let (got, fast) = round_trip(&proxy.addr).await;
        assert_eq!(got, b"ping");
        proxy.set_delay(Duration::from_millis(400));
        let (got, slow) = round_trip(&proxy.addr).await;
        assert_eq!(got, b"ping");
        assert!(slow >= Duration::from_millis(400), "{slow:?}");
        assert!(fast < Duration::from_millis(400), "{fast:?}");
    }
}
