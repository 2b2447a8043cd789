//! Many WebSockets at once.
mod ws_support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rookd_engine::ServerConfig;
use tokio_tungstenite::tungstenite::Message;
use ws_support::{run_client, Host, Seen};

const SOCKETS: usize = 250;
const MESSAGES: usize = 20;

#[test]
fn hundreds_of_concurrent_sockets() {
    let host = Host::start(ServerConfig::default());
    let url = host.url();
    run_client(Duration::from_secs(120), async move {
        // Open them all first, so they really are open at the same time.
        let mut sockets = Vec::with_capacity(SOCKETS);
        for _ in 0..SOCKETS {
            sockets.push(tokio_tungstenite::connect_async(url.as_str()).await.expect("connect").0);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (n, mut ws) in sockets.into_iter().enumerate() {
            tasks.spawn(async move {
                for i in 0..MESSAGES {
                    let text = format!("socket {n} message {i}");
                    ws.send(Message::text(text.clone())).await.unwrap();
                    loop {
                        match ws.next().await.expect("open").expect("ok") {
                            Message::Text(t) => {
                                assert_eq!(t.as_str(), text);
                                break;
                            }
                            _ => continue,
                        }
                    }
                }
                ws.close(None).await.unwrap();
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("client task");
        }
    });
    let log = host.wait_for("all closed", Duration::from_secs(30), |l| {
        l.iter().filter(|s| matches!(s, Seen::Closed { .. })).count() == SOCKETS
    });
    assert_eq!(log.iter().filter(|s| matches!(s, Seen::Open { .. })).count(), SOCKETS);
    assert_eq!(log.iter().filter(|s| matches!(s, Seen::Message { .. })).count(), SOCKETS * MESSAGES);
    assert!(log.iter().all(|s| !matches!(s, Seen::Closed { code, .. } if *code != 1005)));
}
