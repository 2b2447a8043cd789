//! Telling a server's open WebSockets that the server is stopping.
//!
//! Upgraded connections have left hyper (and the server's connection set), and a server
//! only exposes `is_stopping()`, so one small task per server (only while it has open
//! WebSockets) polls that flag and broadcasts it; each connection then closes with 1001.
//! Polling costs one wake-up per interval per server, not per connection.
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;

use crate::event::ServerId;
use crate::server::ServerShared;

const POLL: Duration = Duration::from_millis(50);

struct Signal {
    tx: watch::Sender<bool>,
}

/// A connection's subscription; keeps its server's poller alive while held.
pub struct StopWatch {
    pub rx: watch::Receiver<bool>,
    _signal: Arc<Signal>,
}

static REGISTRY: Mutex<Vec<(ServerId, Weak<Signal>)>> = Mutex::new(Vec::new());

/// Subscribe to `shared`'s stop; must be called inside the runtime.
pub fn subscribe(shared: &Arc<ServerShared>) -> StopWatch {
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    reg.retain(|(_, w)| w.strong_count() > 0);
    if let Some(signal) = reg
        .iter()
        .find(|(id, _)| *id == shared.id)
        .and_then(|(_, w)| w.upgrade())
    {
        return StopWatch {
            rx: signal.tx.subscribe(),
            _signal: signal,
        };
    }
    let (tx, rx) = watch::channel(shared.is_stopping());
    let signal = Arc::new(Signal { tx });
    reg.push((shared.id, Arc::downgrade(&signal)));
    tokio::spawn(poll(Arc::downgrade(&signal), Arc::clone(shared)));
    StopWatch { rx, _signal: signal }
}

async fn poll(signal: Weak<Signal>, shared: Arc<ServerShared>) {
    let mut tick = tokio::time::interval(POLL);
    loop {
        tick.tick().await;
        let Some(signal) = signal.upgrade() else {
            return; // no WebSocket of this server is open any more
        };
        if shared.is_stopping() {
            signal.tx.send_replace(true);
            return;
        }
    }
}
