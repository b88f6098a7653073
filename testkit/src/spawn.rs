//! A server task on a port-0 loopback listener, stopped by a oneshot.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest a server may take to drain and stop when asked.
pub const STOP_LIMIT: Duration = Duration::from_secs(30);

/// A server running in this process: its address, and the means to stop it. Dropped
/// without [`Spawned::stop`], the task is aborted.
pub struct Spawned<T: Send + 'static = ()> {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<T>>,
    /// A second socket on the port (SO_REUSEPORT, never listening): while the server
    /// is stopped its port refuses connections and no other test can take it, so a
    /// restart on the same address never races.
    reserve: Option<TcpSocket>,
}

fn reuseport_socket(addr: SocketAddr) -> TcpSocket {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseport(true).unwrap();
    socket
        .bind(addr)
        .unwrap_or_else(|err| panic!("cannot bind {addr}: {err}"));
    socket
}

/// The shutdown future handed to a server: completes when the test stops it (or
/// drops the [`Spawned`]).
pub struct Shutdown(oneshot::Receiver<()>);

impl Future for Shutdown {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

fn shutdown_future(rx: oneshot::Receiver<()>) -> Shutdown {
    Shutdown(rx)
}

/// Binds `127.0.0.1:0` (the port reserved until the [`Spawned`] is dropped) and
/// spawns `run(listener, shutdown)`.
pub fn spawn<T, F>(run: impl FnOnce(TcpListener, Shutdown) -> F) -> Spawned<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let socket = reuseport_socket("127.0.0.1:0".parse().unwrap());
    let addr = socket.local_addr().unwrap();
    let reserve = reuseport_socket(addr);
    let mut spawned = spawn_listener(socket.listen(1024).unwrap(), run);
    spawned.reserve = Some(reserve);
    spawned
}

/// Spawns `run` on a listener bound by the caller.
pub fn spawn_listener<T, F>(
    listener: TcpListener,
    run: impl FnOnce(TcpListener, Shutdown) -> F,
) -> Spawned<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    Spawned {
        addr,
        stop: Some(tx),
        task: Some(tokio::spawn(run(listener, shutdown_future(rx)))),
        reserve: None,
    }
}

impl<T: Send + 'static> Spawned<T> {
    /// Stops the server if it runs, then serves `run` again on the same address (kept
    /// reserved in between).
    pub async fn respawn<F>(&mut self, run: impl FnOnce(TcpListener, Shutdown) -> F)
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.stop().await;
        assert!(
            self.reserve.is_some(),
            "respawn needs a server started by spawn()"
        );
        let listener = reuseport_socket(self.addr).listen(1024).unwrap();
        let (tx, rx) = oneshot::channel();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(run(listener, shutdown_future(rx))));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signals shutdown and waits (within [`STOP_LIMIT`]) for the task's result.
    /// Stopping a stopped server returns `None`.
    pub async fn stop(&mut self) -> Option<T> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take()?;
        Some(
            tokio::time::timeout(STOP_LIMIT, task)
                .await
                .unwrap_or_else(|_| {
                    panic!("server {} did not stop within {STOP_LIMIT:?}", self.addr)
                })
                .expect("server task panicked"),
        )
    }

    /// Kills the task at once, as a crash would: no drain.
    pub fn abort(&mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Whether the task has ended (e.g. failed at startup).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl<T: Send + 'static> Drop for Spawned<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
