//! permessage-deflate end to end, with a raw client that compresses and inflates with
//! flate2 on its own (independently of the server's code).
mod ws_support;

use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use rookd_engine::ServerConfig;
use ws_support::{run_client, Host, RawClient};

const LIMIT: Duration = Duration::from_secs(30);
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

fn deflate(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let start = c.total_in() as usize;
    loop {
        let done = c.total_in() as usize - start;
        if out.capacity() - out.len() < 64 {
            out.reserve(4096);
        }
        c.compress_vec(&data[done..], &mut out, FlushCompress::Sync).unwrap();
        if c.total_in() as usize - start == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - 4);
    out
}

fn inflate(d: &mut Decompress, data: &[u8]) -> Vec<u8> {
    let mut input = data.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::with_capacity(data.len() * 4 + 1024);
    let start = d.total_in() as usize;
    loop {
        let done = d.total_in() as usize - start;
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity());
        }
        d.decompress_vec(&input[done..], &mut out, FlushDecompress::Sync).unwrap();
        if d.total_in() as usize - start == input.len() && out.len() < out.capacity() {
            break;
        }
    }
    out
}

fn json_like(i: usize) -> String {
    (0..200).map(|k| format!("{{\"id\":{k},\"name\":\"item {k}\",\"round\":{i}}},")).collect()
}

/// Send `n` compressed text messages and check the (compressed) echoes.
async fn exchange(client: &mut RawClient, n: usize, client_takeover: bool, server_takeover: bool) -> Vec<usize> {
    let mut comp = Compress::new(Compression::default(), false);
    let mut decomp = Decompress::new(false);
    let mut sizes = vec![];
    for i in 0..n {
        // The same message again and again: with context takeover it can refer back whole.
        let msg = json_like(i / 100);
        if !client_takeover {
            comp.reset();
        }
        let z = deflate(&mut comp, msg.as_bytes());
        client.send_frame(true, true, 0x1, &z).await;
        let f = client.read_non_ping().await.expect("echo");
        assert_eq!(f.opcode, 0x1);
        assert!(f.rsv1, "the echo of a large text is compressed");
        sizes.push(f.payload.len());
        if !server_takeover {
            // The server promised not to refer to earlier messages: a fresh inflater works.
            decomp = Decompress::new(false);
        }
        assert_eq!(inflate(&mut decomp, &f.payload), msg.as_bytes());
    }
    sizes
}

#[test]
fn deflate_with_context_takeover() {
    let host = Host::start(ServerConfig::default());
    run_client(LIMIT, async {
        let (mut c, hs) = RawClient::connect(
            host.addr,
            &[("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")],
        )
        .await;
        assert_eq!(hs.status, 101);
        assert_eq!(hs.header("sec-websocket-extensions"), Some("permessage-deflate"));
        let sizes = exchange(&mut c, 5, true, true).await;
        // Later messages refer back to earlier ones and shrink a lot.
        assert!(sizes[3] * 2 < sizes[0], "{sizes:?}");
        // An uncompressed message is fine too.
        c.send_frame(true, false, 0x2, b"plain").await;
        let f = c.read_non_ping().await.unwrap();
        assert_eq!((f.opcode, f.rsv1, &f.payload[..]), (0x2, false, &b"plain"[..]));
        c.close(1000, "").await;
        assert_eq!(c.expect_close().await, Some(1000));
    });
}

#[test]
fn deflate_without_context_takeover() {
    let host = Host::start(ServerConfig::default());
    run_client(LIMIT, async {
        let offer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        let (mut c, hs) = RawClient::connect(host.addr, &[("Sec-WebSocket-Extensions", offer)]).await;
        // We hold ourselves to server_no_context_takeover; the client's offer to do the
        // same is not taken up (its context costs us nothing and compresses better).
        assert_eq!(hs.header("sec-websocket-extensions"), Some("permessage-deflate; server_no_context_takeover"));
        let sizes = exchange(&mut c, 4, false, false).await;
        assert!(sizes[1..].iter().all(|s| (*s as f64) > sizes[0] as f64 * 0.8), "{sizes:?}");
        c.close(1000, "").await;
        assert_eq!(c.expect_close().await, Some(1000));
    });
}

#[test]
fn small_server_window_is_honoured_by_not_compressing() {
    let host = Host::start(ServerConfig::default());
    run_client(LIMIT, async {
        let offer = "permessage-deflate; server_max_window_bits=10";
        let (mut c, hs) = RawClient::connect(host.addr, &[("Sec-WebSocket-Extensions", offer)]).await;
        assert_eq!(hs.header("sec-websocket-extensions"), Some("permessage-deflate; server_max_window_bits=10"));
        let mut comp = Compress::new(Compression::default(), false);
        let msg = json_like(0);
        c.send_frame(true, true, 0x1, &deflate(&mut comp, msg.as_bytes())).await;
        let f = c.read_non_ping().await.unwrap();
        assert!(!f.rsv1);
        assert_eq!(f.payload, msg.as_bytes());
    });
}

#[test]
fn compressed_message_in_fragments_with_a_ping_between() {
    let host = Host::start(ServerConfig::default());
    run_client(LIMIT, async {
        let (mut c, _) = RawClient::connect(host.addr, &[("Sec-WebSocket-Extensions", "permessage-deflate")]).await;
        let msg = json_like(7);
        let z = deflate(&mut Compress::new(Compression::default(), false), msg.as_bytes());
        let third = z.len() / 3;
        c.send_frame(false, true, 0x1, &z[..third]).await;
        c.send_frame(true, false, 0x9, b"ping!").await;
        c.send_frame(false, false, 0x0, &z[third..2 * third]).await;
        c.send_frame(true, false, 0x0, &z[2 * third..]).await;
        let pong = c.read_non_ping().await.unwrap();
        assert_eq!((pong.opcode, &pong.payload[..]), (0xA, &b"ping!"[..]));
        let f = c.read_non_ping().await.unwrap();
        assert_eq!(inflate(&mut Decompress::new(false), &f.payload), msg.as_bytes());
    });
}

#[test]
fn corrupt_or_oversized_compressed_data_fails_the_connection() {
    let mut config = ServerConfig::default();
    config.ws.max_message_bytes = 100_000;
    let host = Host::start(config);
    run_client(LIMIT, async {
        let (mut c, _) = RawClient::connect(host.addr, &[("Sec-WebSocket-Extensions", "permessage-deflate")]).await;
        c.send_frame(true, true, 0x2, &[0xff, 0xff, 0xff, 0xff, 0xff]).await;
        assert_eq!(c.expect_close().await, Some(1007));
        // A small "bomb": 1 MB of zeros in about 1 KB.
        let (mut c, _) = RawClient::connect(host.addr, &[("Sec-WebSocket-Extensions", "permessage-deflate")]).await;
        let bomb = deflate(&mut Compress::new(Compression::best(), false), &vec![0u8; 1 << 20]);
        assert!(bomb.len() < 5000);
        c.send_frame(true, true, 0x2, &bomb).await;
        assert_eq!(c.expect_close().await, Some(1009));
        // RSV1 without the extension negotiated: 1002.
        let (mut c, _) = RawClient::connect(host.addr, &[]).await;
        c.send_frame(true, true, 0x2, &bomb).await;
        assert_eq!(c.expect_close().await, Some(1002));
    });
}
