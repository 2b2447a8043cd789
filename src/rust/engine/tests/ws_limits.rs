//! Protocol faults, limits, flow control, keep-alive and shutdown.
mod ws_support;

use std::time::{Duration, Instant};

use rookd_engine::ServerConfig;
use ws_support::{run_client, Host, RawClient, Seen};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn invalid_utf8_is_1007_even_across_fragments() {
    let host = Host::start(ServerConfig::default());
    run_client(LIMIT, async {
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        c.send_frame(true, false, 0x1, b"ok \xff").await;
        assert_eq!(c.expect_close().await, Some(1007));
        // Valid first fragment, the bad byte in the second; the message is never finished.
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        c.send_frame(false, false, 0x1, "κό".as_bytes()).await;
        c.send_frame(false, false, 0x0, &[0xce, 0xff]).await;
        assert_eq!(c.expect_close().await, Some(1007));
        // An invalid close reason.
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        c.send_frame(true, false, 0x8, &[0x03, 0xe8, 0xc0]).await;
        assert_eq!(c.expect_close().await, Some(1007));
    });
    assert_eq!(host.closed(host.opened(0)).0, 1007);
    assert_eq!(host.closed(host.opened(1)).0, 1007);
    // Nothing was delivered.
    assert!(!host.seen().iter().any(|s| matches!(s, Seen::Message { .. })));
}

#[test]
fn protocol_errors_are_1002() {
    let host = Host::start(ServerConfig::default());
    run_client(LIMIT, async {
        let cases: [(&str, Vec<u8>); 6] = [
            ("unmasked", vec![0x81, 0x02, b'h', b'i']),
            ("reserved opcode", vec![0x83, 0x80, 0, 0, 0, 0]),
            ("rsv2", vec![0xA1, 0x80, 0, 0, 0, 0]),
            ("fragmented ping", vec![0x09, 0x80, 0, 0, 0, 0]),
            ("close of one byte", vec![0x88, 0x81, 0, 0, 0, 0, 0x03]),
            ("invalid close code", vec![0x88, 0x82, 0, 0, 0, 0, 0x03, 0xed]),
        ];
        for (what, bytes) in cases {
            let (mut c, _) = RawClient::connect(host.addr, &[]).await;
            c.send_raw(&bytes).await;
            assert_eq!(c.expect_close().await, Some(1002), "{what}");
        }
        // A ping with 126 bytes of payload.
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        c.send_frame(true, false, 0x9, &[0; 126]).await;
        assert_eq!(c.expect_close().await, Some(1002));
    });
}

#[test]
fn fragments_with_interleaved_ping_are_reassembled() {
    let host = Host::start(ServerConfig::default());
    run_client(LIMIT, async {
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        c.send_frame(false, false, 0x1, b"frag").await;
        c.send_frame(true, false, 0x9, b"hello?").await;
        c.send_frame(false, false, 0x0, b"men").await;
        c.send_frame(true, false, 0x0, b"ted").await;
        let pong = c.read_non_ping().await.unwrap();
        assert_eq!((pong.opcode, &pong.payload[..]), (0xA, &b"hello?"[..]));
        let echo = c.read_non_ping().await.unwrap();
        assert_eq!((echo.opcode, echo.fin, &echo.payload[..]), (0x1, true, &b"fragmented"[..]));
    });
}

#[test]
fn too_big_is_1009() {
    let mut config = ServerConfig::default();
    config.ws.max_message_bytes = 1000;
    let host = Host::start(config);
    run_client(LIMIT, async {
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        c.send_frame(true, false, 0x2, &[0; 1000]).await;
        assert_eq!(c.read_non_ping().await.unwrap().payload.len(), 1000);
        c.send_frame(true, false, 0x2, &[0; 1001]).await;
        assert_eq!(c.expect_close().await, Some(1009));
        // Over the limit only once the fragments add up.
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        c.send_frame(false, false, 0x2, &[0; 600]).await;
        c.send_frame(true, false, 0x0, &[0; 600]).await;
        assert_eq!(c.expect_close().await, Some(1009));
    });
    assert_eq!(host.closed(host.opened(1)).0, 1009);
}

#[test]
fn reading_pauses_while_the_host_holds_its_credits() {
    let mut config = ServerConfig::default();
    config.ws.max_inflight_messages = 2;
    let host = Host::start(config);
    run_client(LIMIT, async {
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        host.opened(0);
        host.paused.store(true, std::sync::atomic::Ordering::SeqCst);
        for i in 0..200u32 {
            c.send_frame(true, false, 0x2, &i.to_be_bytes()).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Only as many messages as there are credits reached the Door.
        assert_eq!(host.door_len(), 2);
        host.resume();
        for i in 0..200u32 {
            let f = c.read_non_ping().await.unwrap();
            assert_eq!(f.payload, i.to_be_bytes());
        }
    });
}

#[test]
fn a_client_that_does_not_read_is_closed_with_1008() {
    let mut config = ServerConfig::default();
    config.ws.max_outgoing_bytes = 256 * 1024;
    let host = Host::start(config);
    run_client(LIMIT, async {
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        // The host queues 64 MB at once; far more than the bound.
        c.send_frame(true, false, 0x1, b"flood:1024:65536").await;
        let id = host.opened(0);
        host.wait_for("a refused send", LIMIT, |l| l.contains(&Seen::SendRefused { id }));
        assert_eq!(c.expect_close().await, Some(1008));
    });
    assert_eq!(host.closed(host.opened(0)).0, 1008);
}

#[test]
fn server_pings_and_drops_a_silent_peer() {
    let mut config = ServerConfig::default();
    config.ws.ping_interval = Some(Duration::from_millis(100));
    config.ws.idle_timeout = Some(Duration::from_millis(600));
    config.ws.close_timeout = Duration::from_millis(300);
    let host = Host::start(config);
    run_client(LIMIT, async {
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        // Answer pings for a while: the connection stays up past the idle timeout.
        let until = Instant::now() + Duration::from_millis(1200);
        let mut pings = 0;
        while Instant::now() < until {
            let f = c.read_frame().await.unwrap();
            assert_eq!(f.opcode, 0x9);
            pings += 1;
            c.send_frame(true, false, 0xA, &f.payload).await;
        }
        assert!(pings >= 5, "{pings} pings");
        c.send_frame(true, false, 0x1, b"still here").await;
        assert_eq!(c.read_non_ping().await.unwrap().payload, b"still here");
        // Now go silent: the server closes with 1001 and drops us.
        let started = Instant::now();
        assert_eq!(c.expect_close().await, Some(1001));
        assert!(c.read_frame().await.is_none() || c.read_frame().await.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
    });
    assert_eq!(host.closed(host.opened(0)), (1001, "idle timeout".to_owned()));
}

#[test]
fn stopping_the_server_closes_sockets_with_1001() {
    let mut host = Host::start(ServerConfig::default());
    run_client(LIMIT, async {
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        c.send_frame(true, false, 0x1, b"hi").await;
        assert_eq!(c.read_non_ping().await.unwrap().payload, b"hi");
        host.stop_server();
        assert_eq!(c.expect_close().await, Some(1001));
        c.close(1001, "").await;
        assert!(c.read_frame().await.is_none());
    });
    assert_eq!(host.closed(host.opened(0)).0, 1001);
}

#[test]
fn server_closed_comes_after_the_last_ws_closed() {
    // The client never answers the server's close: the session ends only at its close
    // timeout, well after shutdown_grace; the host must still hear WsClosed first.
    let mut cfg = ServerConfig { shutdown_grace: Duration::ZERO, ..ServerConfig::default() };
    cfg.ws.close_timeout = Duration::from_millis(800);
    let mut host = Host::start(cfg);
    run_client(LIMIT, async {
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        c.send_frame(true, false, 0x1, b"hi").await;
        assert_eq!(c.read_non_ping().await.unwrap().payload, b"hi");
        host.stop_server();
        assert_eq!(c.expect_close().await, Some(1001));
        // Hold the socket, say nothing.
        let log = host.wait_for("ServerClosed", Duration::from_secs(10), |l| l.contains(&Seen::ServerClosed));
        let closed = log.iter().position(|s| matches!(s, Seen::Closed { .. }));
        let server = log.iter().position(|s| *s == Seen::ServerClosed);
        assert!(closed.is_some() && closed < server, "{log:?}");
        drop(c);
    });
}
