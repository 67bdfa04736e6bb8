//! The HTTP server's lifecycle.
//!
//! The server runs on its own tokio runtime (2 worker threads: the machines here have 2
//! cores and the engine thread is the one that must not wait). It binds before the pipeline
//! takes traffic, so a port that is taken fails the start-up, and it stops accepting first at
//! shutdown (graceful: requests in flight finish), before the ring is drained.

use std::net::SocketAddr;

use axum::serve::ListenerExt;
use tokio::sync::oneshot;

use crate::router::router;
use crate::state::AppState;

/// The kernel's send buffer per connection (`SO_SNDBUF`). Linux grows it up to
/// `net.ipv4.tcp_wmem`'s maximum (4 MiB by default) for a peer that does not read; with 10,000
/// WebSocket clients that is 40 GiB the server does not have. Bounded, a client that stops
/// reading fills its own queue soon and is dropped as a slow consumer.
pub const SEND_BUFFER_BYTES: libc::c_int = 256 * 1024;

fn bound_send_buffer(tcp: &tokio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let size = SEND_BUFFER_BYTES;
    // SAFETY: a valid socket and a pointer to a c_int of the given size.
    unsafe {
        libc::setsockopt(
            tcp.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// A running HTTP server.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free one) and serves on a runtime of its own.
    pub fn start(addr: SocketAddr, state: AppState) -> Result<Server, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bourse-http")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state);
        let thread = std::thread::Builder::new()
            .name("bourse-http-main".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // No Nagle: WebSocket answers and channel messages are small and must
                    // not wait for the peer's delayed ACK (40 ms otherwise).
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                        bound_send_buffer(tcp);
                    });
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await
                        .map_err(|e| format!("the HTTP server failed: {e}"))
                })
            })
            .map_err(|e| format!("cannot start the HTTP thread: {e}"))?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops accepting, lets requests in flight finish, and returns once it has.
    pub fn stop(mut self) -> Result<(), String> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err("the HTTP thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
