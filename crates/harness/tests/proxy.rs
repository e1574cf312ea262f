//! The fault proxy against real loopback sockets: a tiny keep-alive HTTP/1.1 upstream that
//! counts complete requests, reqwest as the caller. Every test is bounded by a timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::proxy::{Fault, FaultProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const TEST_LIMIT: Duration = Duration::from_secs(20);

async fn bounded<F: Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("test took too long");
}

/// Minimal HTTP/1.1 server: counts connections and complete requests (headers plus the
/// Content-Length body), answers `200 ok`, keeps the connection alive.
struct Upstream {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (r, c) = (requests.clone(), connections.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, SeqCst);
                tokio::spawn(serve_http(stream, r.clone()));
            }
        });
        Upstream {
            addr,
            requests,
            connections,
            task,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(SeqCst)
    }

    fn connections(&self) -> usize {
        self.connections.load(SeqCst)
    }
}

async fn serve_http(mut stream: TcpStream, requests: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Whole request in `buf`?
        if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            let total = head_end + 4 + length;
            if buf.len() >= total {
                buf.drain(..total);
                requests.fetch_add(1, SeqCst);
                let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                if stream.write_all(answer).await.is_err() {
                    return;
                }
                continue;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return, // an incomplete request is never counted
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .unwrap()
}

async fn post(client: &reqwest::Client, proxy: &FaultProxy) -> reqwest::Result<String> {
    let url = format!("http://{}/batch", proxy.addr());
    let response = client.post(url).body(r#"{"batch":[1,2,3]}"#).send().await?;
    assert_eq!(response.status(), 200);
    response.text().await
}

/// Polls `cond` every 5 ms for up to 2 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn pass_forwards_and_keeps_alive() {
    bounded(async {
        let up = Upstream::start().await;
        let proxy = FaultProxy::start("a->b", up.addr, 1).await.unwrap();
        let client = client(Duration::from_secs(5));
        for _ in 0..3 {
            assert_eq!(post(&client, &proxy).await.unwrap(), "ok");
        }
        assert_eq!(up.requests(), 3);
        assert_eq!(up.connections(), 1, "keep-alive: one upstream connection");
        let stats = proxy.stats();
        assert_eq!(stats.connections, 1, "keep-alive: one caller connection");
        assert!(stats.bytes_up > 3 * 17, "{stats:?}");
        assert!(stats.bytes_down >= 3 * 40, "{stats:?}");
        assert_eq!(stats.cut_by_mode_change, 0);
        assert_eq!(proxy.name(), "a->b");
    })
    .await;
}

#[tokio::test]
async fn delay_adds_latency_both_ways() {
    bounded(async {
        let up = Upstream::start().await;
        let proxy = FaultProxy::start("a->b", up.addr, 2).await.unwrap();
        let client = client(Duration::from_secs(5));
        let (base, jitter) = (Duration::from_millis(150), Duration::from_millis(50));
        proxy.set(Fault::Delay { base, jitter });
        for _ in 0..2 {
            let t0 = Instant::now();
            assert_eq!(post(&client, &proxy).await.unwrap(), "ok");
            let took = t0.elapsed();
            // At least one chunk each way, each delayed by at least base - jitter.
            assert!(took >= 2 * (base - jitter), "took only {took:?}");
            assert!(took < Duration::from_secs(3), "took {took:?}");
        }
        assert_eq!(up.requests(), 2);
    })
    .await;
}

#[tokio::test]
async fn blackhole_times_out_and_upstream_sees_nothing() {
    bounded(async {
        let up = Upstream::start().await;
        let proxy = FaultProxy::start("a->b", up.addr, 3).await.unwrap();
        proxy.set(Fault::Blackhole);
        let t0 = Instant::now();
        let err = post(&client(Duration::from_millis(300)), &proxy)
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert_eq!(up.requests(), 0);
        assert_eq!(up.connections(), 0);
        assert_eq!(proxy.stats().bytes_up, 0);
        assert_eq!(proxy.stats().connections, 1);
    })
    .await;
}

#[tokio::test]
async fn reset_fails_fast() {
    bounded(async {
        let up = Upstream::start().await;
        let proxy = FaultProxy::start("a->b", up.addr, 4).await.unwrap();
        proxy.set(Fault::Reset);
        let t0 = Instant::now();
        let err = post(&client(Duration::from_secs(5)), &proxy)
            .await
            .unwrap_err();
        assert!(!err.is_timeout(), "{err:?}");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        assert_eq!(up.requests(), 0);
        assert_eq!(up.connections(), 0);
    })
    .await;
}

#[tokio::test]
async fn reset_sends_rst() {
    bounded(async {
        let up = Upstream::start().await;
        let proxy = FaultProxy::start("a->b", up.addr, 4).await.unwrap();
        proxy.set(Fault::Reset);
        let mut raw = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut buf = [0u8; 16];
        let err = raw.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn close_after_tears_the_request() {
    bounded(async {
        let up = Upstream::start().await;
        let proxy = FaultProxy::start("a->b", up.addr, 5).await.unwrap();
        proxy.set(Fault::CloseAfter { bytes: 10 });
        let err = post(&client(Duration::from_secs(5)), &proxy)
            .await
            .unwrap_err();
        assert!(!err.is_timeout(), "{err:?}");
        eventually("upstream got the torn stream", || up.connections() == 1).await;
        assert_eq!(proxy.stats().bytes_up, 10);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(up.requests(), 0, "a torn request must never be complete");
    })
    .await;
}

#[tokio::test]
async fn drop_response_after_upstream_applied() {
    bounded(async {
        let up = Upstream::start().await;
        let proxy = FaultProxy::start("a->b", up.addr, 6).await.unwrap();
        proxy.set(Fault::DropResponse);
        let err = post(&client(Duration::from_secs(5)), &proxy)
            .await
            .unwrap_err();
        assert!(!err.is_timeout(), "{err:?}");
        assert_eq!(up.requests(), 1, "upstream applied the request");
        assert_eq!(proxy.stats().bytes_down, 0);
    })
    .await;
}

#[tokio::test]
async fn duplicate_sends_every_request_twice() {
    bounded(async {
        let up = Upstream::start().await;
        let proxy = FaultProxy::start("a->b", up.addr, 7).await.unwrap();
        proxy.set(Fault::Duplicate);
        let client = client(Duration::from_secs(5));
        assert_eq!(post(&client, &proxy).await.unwrap(), "ok");
        eventually("second copy applied", || up.requests() == 2).await;
        assert_eq!(up.connections(), 2);
        // Keep-alive still works: the next request also lands twice.
        assert_eq!(post(&client, &proxy).await.unwrap(), "ok");
        eventually("both copies applied", || up.requests() == 4).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(up.requests(), 4);
        assert_eq!(proxy.stats().connections, 1);
    })
    .await;
}

#[tokio::test]
async fn set_cuts_keep_alive_connections_and_new_mode_applies() {
    bounded(async {
        let up = Upstream::start().await;
        let proxy = FaultProxy::start("a->b", up.addr, 8).await.unwrap();
        let client = client(Duration::from_millis(400));
        assert_eq!(post(&client, &proxy).await.unwrap(), "ok");
        assert_eq!(post(&client, &proxy).await.unwrap(), "ok");
        assert_eq!(proxy.stats().connections, 1);

        proxy.set(Fault::Blackhole);
        eventually("pass connection cut", || {
            let s = proxy.stats();
            s.cut_by_mode_change == 1 && s.active == 0
        })
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await; // let the client see the close
        let err = post(&client, &proxy).await.unwrap_err();
        assert!(
            err.is_timeout(),
            "blackhole applies to the same client: {err:?}"
        );
        assert_eq!(up.requests(), 2);

        proxy.set(Fault::Pass);
        eventually("blackholed connection cut", || proxy.stats().active == 0).await;
        assert_eq!(post(&client, &proxy).await.unwrap(), "ok");
        assert_eq!(up.requests(), 3);
        let stats = proxy.stats();
        assert!(stats.cut_by_mode_change >= 2, "{stats:?}");
        assert!(stats.connections >= 3, "{stats:?}");
    })
    .await;
}

#[tokio::test]
async fn set_cuts_a_raw_pass_connection_promptly() {
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = FaultProxy::start("a->b", listener.local_addr().unwrap(), 9)
            .await
            .unwrap();
        let mut caller = TcpStream::connect(proxy.addr()).await.unwrap();
        let (mut callee, _) = listener.accept().await.unwrap();
        caller.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        callee.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        callee.write_all(b"pong").await.unwrap();
        caller.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");

        let t0 = Instant::now();
        proxy.set(Fault::Pass); // even the same mode cuts older connections
        let n = caller.read(&mut buf).await.unwrap_or(0);
        assert_eq!(n, 0, "caller side closed");
        assert!(
            t0.elapsed() < Duration::from_millis(200),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(
            callee.read(&mut buf).await.unwrap_or(0),
            0,
            "callee side closed"
        );
        assert_eq!(proxy.stats().cut_by_mode_change, 1);
    })
    .await;
}

#[tokio::test]
async fn upstream_down_fails_fast() {
    bounded(async {
        let dead = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let proxy = FaultProxy::start("a->b", dead, 10).await.unwrap();
        let t0 = Instant::now();
        let err = post(&client(Duration::from_secs(5)), &proxy)
            .await
            .unwrap_err();
        assert!(!err.is_timeout(), "{err:?}");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        assert_eq!(proxy.stats().upstream_connect_failures, 1);

        // The callee comes back on another port.
        let up = Upstream::start().await;
        proxy.set_upstream(up.addr);
        assert_eq!(
            post(&client(Duration::from_secs(5)), &proxy).await.unwrap(),
            "ok"
        );
        assert_eq!(up.requests(), 1);
    })
    .await;
}

#[tokio::test]
async fn log_records_transitions_in_order() {
    bounded(async {
        let up = Upstream::start().await;
        let proxy = FaultProxy::start("a->b", up.addr, 11).await.unwrap();
        assert_eq!(proxy.fault(), Fault::Pass);
        assert!(proxy.log().is_empty());
        let delay = Fault::Delay {
            base: Duration::from_millis(5),
            jitter: Duration::ZERO,
        };
        let modes = [
            Fault::Blackhole,
            delay,
            Fault::CloseAfter { bytes: 3 },
            Fault::Pass,
        ];
        for mode in &modes {
            proxy.set(mode.clone());
            assert_eq!(&proxy.fault(), mode);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let log = proxy.log();
        let logged: Vec<Fault> = log.iter().map(|(_, f)| f.clone()).collect();
        assert_eq!(logged, modes);
        assert!(log
            .windows(2)
            .all(|w| w[1].0 >= w[0].0 + Duration::from_millis(10)));
    })
    .await;
}

#[tokio::test]
async fn stop_closes_everything_and_leaks_no_task() {
    bounded(async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let baseline = metrics.num_alive_tasks();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = FaultProxy::start("a->b", listener.local_addr().unwrap(), 12)
            .await
            .unwrap();
        // One Duplicate connection, cut by the switch to Blackhole; one Blackhole connection,
        // cut by the switch to Pass; two Pass connections, closed by `stop`.
        proxy.set(Fault::Duplicate);
        let mut dup = TcpStream::connect(proxy.addr()).await.unwrap();
        dup.write_all(b"x").await.unwrap();
        let mut callees = vec![
            listener.accept().await.unwrap().0,
            listener.accept().await.unwrap().0,
        ];
        proxy.set(Fault::Blackhole);
        let mut buf = [0u8; 8];
        assert_eq!(dup.read(&mut buf).await.unwrap_or(0), 0);
        let mut hole = TcpStream::connect(proxy.addr()).await.unwrap();
        hole.write_all(b"x").await.unwrap();
        eventually("blackhole connection accepted", || {
            proxy.stats().connections == 2
        })
        .await;
        proxy.set(Fault::Pass);
        assert_eq!(hole.read(&mut buf).await.unwrap_or(0), 0);
        let mut callers = Vec::new();
        for _ in 0..2 {
            let mut caller = TcpStream::connect(proxy.addr()).await.unwrap();
            caller.write_all(b"x").await.unwrap();
            let (mut callee, _) = listener.accept().await.unwrap();
            callee.read_exact(&mut buf[..1]).await.unwrap();
            callees.push(callee);
            callers.push(caller);
        }
        let stats = proxy.stats();
        assert_eq!(
            (stats.active, stats.cut_by_mode_change),
            (2, 2),
            "{stats:?}"
        );

        proxy.stop();
        for caller in &mut callers {
            assert_eq!(caller.read(&mut buf).await.unwrap_or(0), 0, "caller closed");
        }
        for callee in &mut callees[2..] {
            assert_eq!(callee.read(&mut buf).await.unwrap_or(0), 0, "callee closed");
        }
        eventually("no task left", || metrics.num_alive_tasks() == baseline).await;
        assert_eq!(proxy.stats().active, 0);
        assert!(
            TcpStream::connect(proxy.addr()).await.is_err(),
            "listener closed"
        );
    })
    .await;
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_proxy() {
    bounded(async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let baseline = metrics.num_alive_tasks();
        let up = Upstream::start().await;
        let proxy = FaultProxy::start("a->b", up.addr, 13).await.unwrap();
        let addr = proxy.addr();
        let clone = proxy.clone();
        drop(proxy);
        assert_eq!(
            post(&client(Duration::from_secs(5)), &clone).await.unwrap(),
            "ok",
            "a clone keeps it running"
        );
        drop(clone);
        drop(up);
        eventually("no task left", || metrics.num_alive_tasks() == baseline).await;
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    })
    .await;
}
