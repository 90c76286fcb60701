//! Connections, below HTTP: how many may be open, and how long one may sit idle.
//!
//! actix times out a slow request head only on a connection's first request; on a kept-alive
//! connection, the head of the next one may stall for ever, and every stalled connection holds
//! a file descriptor. So every connection's socket is wrapped ([`Watched`]): while none of its
//! requests is being handled, a connection on which nothing is read or written for the client
//! timeout is closed. That covers a stalled head (first or later) and a client that stops
//! reading a response; a request being handled is the handler's business (its body has its
//! own idle timeout, see [`super::intake`]), so a long durable write never trips it.
//!
//! Connections are capped below the process's descriptor limit, so that running short of
//! descriptors makes new connections wait in the listen queue rather than fail files in use.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::dev::ServiceRequest;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Descriptors kept out of the connection cap, at most: blobs being served and written, record
/// files, the database, the listening socket, the scrub. Half the limit when that is less.
const RESERVED_FDS: u64 = 512;

/// Milliseconds since the first call, a cheap monotonic clock shared by threads.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What a connection is doing, shared by its socket and the requests on it.
#[derive(Default)]
pub struct Activity {
    /// Requests of this connection being handled.
    busy: AtomicUsize,
    /// When bytes last moved, or a request last finished.
    last: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last.store(now_ms(), Ordering::Relaxed);
    }
}

/// A connection's socket with an idle timeout (see the module docs).
pub struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<T> Watched<T> {
    pub fn new(io: T, idle: Duration) -> Self {
        let activity = Arc::new(Activity::default());
        activity.touch();
        Watched {
            io,
            activity,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }

    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// On a pending read or write: an error once the connection has been idle, with no
    /// request being handled, for the whole timeout. The timer is not moved on every byte:
    /// it may fire early, and is then set again for what is left of the timeout, so a busy
    /// connection costs one timer a timeout, not one per read.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let idle_ms = now_ms().saturating_sub(self.activity.last.load(Ordering::Relaxed));
            let left = self.idle.saturating_sub(Duration::from_millis(idle_ms));
            if left.is_zero() && self.activity.busy.load(Ordering::Relaxed) == 0 {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent and read nothing for the client timeout",
                ));
            }
            // While a request is handled, look again a timeout later.
            let wait = if left.is_zero() { self.idle } else { left };
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::now() + wait);
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.activity.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check_idle(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, data) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.activity.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check_idle(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.activity.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check_idle(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Marks a request's connection busy until the returned guard drops (the request handled):
/// the connection's idle timeout waits meanwhile. Called by [`super::intake`]'s middleware,
/// which every request passes anyway, rather than from a middleware layer of its own.
pub fn handling(req: &ServiceRequest) -> Option<Handling> {
    let activity = req.conn_data::<Arc<Activity>>()?.clone();
    activity.busy.fetch_add(1, Ordering::Relaxed);
    Some(Handling(activity))
}

pub struct Handling(Arc<Activity>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A listening socket as actix binds one: address reuse, and a deep queue for bursts.
pub fn listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(std::net::TcpListener::from(socket))
}

/// Connections each worker may hold: the descriptor limit (raised to its hard ceiling first)
/// less [`RESERVED_FDS`], shared by the workers.
pub fn connection_cap(workers: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(max)) = (limit.current, limit.maximum) {
        if current < max {
            limit.current = Some(max);
            if setrlimit(Resource::Nofile, limit).is_err() {
                limit.current = Some(current);
            }
        }
    }
    let fds = limit.current.unwrap_or(65_536);
    let cap = (fds - RESERVED_FDS.min(fds / 2)) / workers.max(1) as u64;
    usize::try_from(cap.max(4)).unwrap_or(usize::MAX)
}
