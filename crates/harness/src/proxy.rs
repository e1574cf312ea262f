//! An in-process TCP fault proxy (in the spirit of toxiproxy) for chaos tests of the HTTP/1.1
//! traffic between regions.
//!
//! One [`FaultProxy`] sits on each directed link "caller region → callee region": it listens
//! on `127.0.0.1:0` and forwards every accepted connection to the callee. The chaos driver
//! switches its [`Fault`] at (seeded) random times with [`FaultProxy::set`].
//!
//! The mode is read once, when a connection is accepted. Every `set` bumps a generation, and
//! every live connection of an older generation is closed at once, so keep-alive connections
//! reconnect and pick up the new mode. Each connection is one spawned task that owns both
//! sockets; it ends when the connection ends, when the mode changes or when the proxy stops.
//! Errors on one connection only end that connection.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Size of the read buffer: a "chunk" is whatever one read of at most this many bytes returned.
const CHUNK: usize = 16 * 1024;

/// What the proxy does to the connections it accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// Forward both ways, every chunk in each direction delayed by `base ± jitter` (seeded,
    /// uniform); order is kept per direction, so a chunk never overtakes an earlier one.
    Delay { base: Duration, jitter: Duration },
    /// Accept, read and discard, never answer (the caller times out). Upstream sees nothing.
    Blackhole,
    /// Accept and close at once with a TCP RST (`SO_LINGER` 0).
    Reset,
    /// Forward the first `bytes` bytes of the request stream upstream, then close both sides
    /// (a torn request). Answers arriving before that are forwarded.
    CloseAfter { bytes: usize },
    /// Forward the request; when the first answer bytes arrive they are dropped and both
    /// sides closed (upstream applied the request, the caller sees an error).
    DropResponse,
    /// Every byte from the caller goes to two upstream connections; the caller gets the
    /// first one's answer, the second's is read and discarded.
    Duplicate,
}

/// Counters since start. `bytes_up`/`bytes_down` count bytes actually forwarded
/// (caller → callee, counted once even under [`Fault::Duplicate`]; callee → caller).
#[derive(Debug, Clone, Default)]
pub struct ProxyStats {
    /// Connections accepted from callers.
    pub connections: u64,
    /// Connections currently open (their task is alive).
    pub active: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Connections closed because the mode changed ([`FaultProxy::set`]).
    pub cut_by_mode_change: u64,
    /// Upstream connects that failed (the caller's connection was closed).
    pub upstream_connect_failures: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    active: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    cut: AtomicU64,
    connect_failures: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Control {
    generation: u64,
    stopped: bool,
}

struct State {
    fault: Fault,
    upstream: SocketAddr,
    log: Vec<(Duration, Fault)>,
}

struct Inner {
    name: String,
    addr: SocketAddr,
    started: Instant,
    state: Mutex<State>,
    control: watch::Sender<Control>,
    rng: Mutex<fastrand::Rng>,
    counters: Counters,
}

/// Handle to a running proxy. Cheap to clone; the proxy stops when the last handle is dropped
/// (or at [`FaultProxy::stop`]).
#[derive(Clone)]
pub struct FaultProxy {
    inner: Arc<Inner>,
    _stop_on_drop: Arc<StopOnDrop>,
}

struct StopOnDrop(Arc<Inner>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("name", &self.inner.name)
            .field("addr", &self.inner.addr)
            .field("fault", &self.fault())
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FaultProxy {
    /// Binds `127.0.0.1:0` and spawns the accept loop on the current tokio runtime. Starts in
    /// [`Fault::Pass`].
    pub async fn start(
        name: impl Into<String>,
        upstream: SocketAddr,
        seed: u64,
    ) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let (control, _) = watch::channel(Control {
            generation: 0,
            stopped: false,
        });
        let inner = Arc::new(Inner {
            name: name.into(),
            addr: listener.local_addr()?,
            started: Instant::now(),
            state: Mutex::new(State {
                fault: Fault::Pass,
                upstream,
                log: Vec::new(),
            }),
            control,
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            counters: Counters::default(),
        });
        tokio::spawn(accept_loop(Arc::clone(&inner), listener));
        Ok(FaultProxy {
            _stop_on_drop: Arc::new(StopOnDrop(Arc::clone(&inner))),
            inner,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Switches the mode, records it in the log and closes every connection accepted before
    /// (whatever its mode). Setting the current mode again still counts as a transition.
    pub fn set(&self, fault: Fault) {
        let inner = &self.inner;
        let at = inner.started.elapsed();
        let old = {
            let mut state = lock(&inner.state);
            let old = std::mem::replace(&mut state.fault, fault.clone());
            state.log.push((at, fault.clone()));
            // Under the state lock, so the accept loop sees mode and generation together.
            inner.control.send_modify(|c| c.generation += 1);
            old
        };
        eprintln!(
            "[proxy {}] +{}ms {old:?} -> {fault:?}",
            inner.name,
            at.as_millis()
        );
    }

    pub fn fault(&self) -> Fault {
        lock(&self.inner.state).fault.clone()
    }

    /// Where new connections go from now on (the callee restarted on another port). Live
    /// connections are left alone.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        lock(&self.inner.state).upstream = upstream;
    }

    pub fn upstream(&self) -> SocketAddr {
        lock(&self.inner.state).upstream
    }

    /// Every [`FaultProxy::set`] since start: (time since start, new mode), in order.
    pub fn log(&self) -> Vec<(Duration, Fault)> {
        lock(&self.inner.state).log.clone()
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.inner.counters;
        ProxyStats {
            connections: c.connections.load(Relaxed),
            active: c.active.load(Relaxed),
            bytes_up: c.bytes_up.load(Relaxed),
            bytes_down: c.bytes_down.load(Relaxed),
            cut_by_mode_change: c.cut.load(Relaxed),
            upstream_connect_failures: c.connect_failures.load(Relaxed),
        }
    }

    /// Stops accepting (the listener is closed) and closes every connection. Idempotent.
    pub fn stop(&self) {
        self.inner.stop();
    }
}

impl Inner {
    fn stop(&self) {
        self.control
            .send_if_modified(|c| !std::mem::replace(&mut c.stopped, true));
    }

    /// A delay uniform in `[base - jitter, base + jitter]` (clamped at zero).
    fn jittered(&self, base: Duration, jitter: Duration) -> Duration {
        let low = base.saturating_sub(jitter);
        let span = (base.saturating_add(jitter) - low).as_nanos();
        let span = u64::try_from(span).unwrap_or(u64::MAX);
        if span == 0 {
            return low;
        }
        low.saturating_add(Duration::from_nanos(lock(&self.rng).u64(0..=span)))
    }

    async fn connect(&self, upstream: SocketAddr) -> io::Result<TcpStream> {
        match TcpStream::connect(upstream).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
            Err(e) => {
                self.counters.connect_failures.fetch_add(1, Relaxed);
                Err(e)
            }
        }
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut control = inner.control.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = control.wait_for(|c| c.stopped) => return,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of descriptors or a connection aborted before accept: back off a bit.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (fault, upstream, generation) = {
            let state = lock(&inner.state);
            let control = *inner.control.borrow();
            if control.stopped {
                return;
            }
            (state.fault.clone(), state.upstream, control.generation)
        };
        inner.counters.connections.fetch_add(1, Relaxed);
        inner.counters.active.fetch_add(1, Relaxed);
        tokio::spawn(connection(
            Arc::clone(&inner),
            client,
            fault,
            upstream,
            generation,
        ));
    }
}

/// Decrements `active` however the connection task ends.
struct Active<'a>(&'a AtomicU64);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

async fn connection(
    inner: Arc<Inner>,
    client: TcpStream,
    fault: Fault,
    upstream: SocketAddr,
    generation: u64,
) {
    let _active = Active(&inner.counters.active);
    let mut control = inner.control.subscribe();
    let cut = async {
        control
            .wait_for(|c| c.stopped || c.generation != generation)
            .await
            .map(|c| !c.stopped)
            .unwrap_or(false)
    };
    tokio::select! {
        // Dropping `serve` drops (closes) both sockets.
        _ = serve(&inner, client, fault, upstream) => {}
        by_mode_change = cut => {
            if by_mode_change {
                inner.counters.cut.fetch_add(1, Relaxed);
            }
        }
    }
}

fn ended(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, why.to_string())
}

async fn serve(
    inner: &Inner,
    client: TcpStream,
    fault: Fault,
    upstream: SocketAddr,
) -> io::Result<()> {
    let _ = client.set_nodelay(true);
    match fault {
        Fault::Reset => return client.set_zero_linger(), // dropped right after: RST
        Fault::Blackhole => return discard(client).await,
        _ => {}
    }
    let up = inner.connect(upstream).await?;
    let (cr, cw) = client.into_split();
    let (ur, uw) = up.into_split();
    let c = &inner.counters;
    match fault {
        Fault::Pass => {
            tokio::try_join!(
                pump(cr, uw, &c.bytes_up, None),
                pump(ur, cw, &c.bytes_down, None)
            )?;
        }
        Fault::Delay { base, jitter } => {
            tokio::try_join!(
                delayed(inner, cr, uw, &c.bytes_up, base, jitter),
                delayed(inner, ur, cw, &c.bytes_down, base, jitter),
            )?;
        }
        Fault::CloseAfter { bytes } => {
            tokio::try_join!(
                pump(cr, uw, &c.bytes_up, Some(bytes)),
                pump(ur, cw, &c.bytes_down, None)
            )?;
        }
        Fault::DropResponse => {
            tokio::try_join!(pump(cr, uw, &c.bytes_up, None), drop_first_answer(ur, cw))?;
        }
        Fault::Duplicate => {
            let (ur2, uw2) = inner.connect(upstream).await?.into_split();
            tokio::try_join!(
                fan_out(cr, uw, uw2, &c.bytes_up),
                pump(ur, cw, &c.bytes_down, None),
                discard(ur2),
            )?;
        }
        Fault::Reset | Fault::Blackhole => {}
    }
    Ok(())
}

/// Copies `from` to `to` until EOF, then shuts `to` down for writing. With a `budget`, ends
/// the whole connection (by failing) once that many bytes went through.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    counter: &AtomicU64,
    mut budget: Option<usize>,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let want = match budget {
            Some(0) => return Err(ended("byte budget spent")),
            Some(left) => left.min(CHUNK),
            None => CHUNK,
        };
        let n = from.read(&mut buf[..want]).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Relaxed);
        if let Some(left) = budget.as_mut() {
            *left -= n;
        }
    }
}

/// Like [`pump`], but every chunk is written `base ± jitter` after it was read. Reading goes
/// on meanwhile; due times never decrease, so order is kept.
async fn delayed(
    inner: &Inner,
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    counter: &AtomicU64,
    base: Duration,
    jitter: Duration,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(64);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        let mut last_due = tokio::time::Instant::now();
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok(()); // drops `tx`: the writer flushes what is queued, then shuts down
            }
            let due = (tokio::time::Instant::now() + inner.jittered(base, jitter)).max(last_due);
            last_due = due;
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                return Ok(());
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            to.write_all(&chunk).await?;
            counter.fetch_add(chunk.len() as u64, Relaxed);
        }
        let _ = to.shutdown().await;
        Ok::<_, io::Error>(())
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

/// Reads and discards until EOF or error.
async fn discard(mut from: impl AsyncRead + Unpin) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    while from.read(&mut buf).await.unwrap_or(0) > 0 {}
    Ok(())
}

/// Ends the connection (by failing) as soon as upstream sends its first bytes.
async fn drop_first_answer(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    if from.read(&mut buf).await? == 0 {
        let _ = to.shutdown().await;
        return Ok(());
    }
    Err(ended("answer dropped"))
}

/// Copies the caller's bytes to both upstreams. The second one is best effort: if it fails,
/// the first goes on alone.
async fn fan_out(
    mut from: impl AsyncRead + Unpin,
    mut first: impl AsyncWrite + Unpin,
    second: impl AsyncWrite + Unpin,
    counter: &AtomicU64,
) -> io::Result<()> {
    let mut second = Some(second);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = first.shutdown().await;
            if let Some(second) = second.as_mut() {
                let _ = second.shutdown().await;
            }
            return Ok(());
        }
        let chunk = &buf[..n];
        match second.as_mut() {
            Some(dup) => {
                let (a, b) = tokio::join!(first.write_all(chunk), dup.write_all(chunk));
                a?;
                if b.is_err() {
                    second = None;
                }
            }
            None => first.write_all(chunk).await?,
        }
        counter.fetch_add(n as u64, Relaxed);
    }
}
