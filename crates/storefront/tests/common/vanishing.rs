//! A TCP relay in front of a real server that can play a host lost for good.
//!
//! When an instance vanishes, the connections to the server on it neither
//! close nor fail: nothing answers any more and no reset ever arrives. The
//! server that replaces it (its disk moved to another instance) is reached
//! at the same name by new connections only. [`VanishingRelay::vanish`] does
//! the same to every connection open at that moment: each stays open towards
//! its client and is never answered again (what the client sends is read and
//! dropped, as a peer's kernel would until it gave up), and its upstream side
//! is closed, so the real server forgets it. Connections made afterwards are
//! relayed as before.

use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct VanishingRelay {
    pub addr: SocketAddr,
    /// Incremented by `vanish`: a connection accepted in an earlier epoch is cut.
    epoch: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl VanishingRelay {
    pub async fn start(upstream: SocketAddr) -> VanishingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (epoch, _) = watch::channel(0u64);
        let task = tokio::spawn(accept_forever(listener, upstream, epoch.clone()));
        VanishingRelay { addr, epoch, task }
    }

    /// Every connection open now goes silent for good; new ones are relayed.
    pub fn vanish(&self) {
        self.epoch.send_modify(|epoch| *epoch += 1);
    }
}

impl Drop for VanishingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_forever(listener: TcpListener, upstream: SocketAddr, epoch: watch::Sender<u64>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(relay(client, upstream, epoch.subscribe()));
    }
}

/// Relays both ways until either side closes or the epoch moves on; then
/// the client is held, unanswered, until it gives up.
async fn relay(mut client: TcpStream, upstream: SocketAddr, mut epoch: watch::Receiver<u64>) {
    epoch.mark_unchanged();
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
        _ = epoch.changed() => {}
    }
    drop(server);
    let mut sink = [0u8; 4096];
    while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
}
