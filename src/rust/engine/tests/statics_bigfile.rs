//! A 64 MB file is streamed from disk, never held in memory. This test is alone in its
//! binary so the process's resident memory is its own to measure.
mod statics_support;

use std::io::{BufReader, Read, Write};

use rookd_engine::statics::{StaticOptions, StaticPathSpec, StaticPaths};
use statics_support::{connect, read_head, Host, TempDir};

const SIZE: usize = 64 * 1024 * 1024;

fn byte_at(i: usize) -> u8 {
    (i % 251) as u8
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn sixty_four_megabytes_stream_with_bounded_memory() {
    let t = TempDir::new("big");
    {
        // Written in pieces so the test itself never holds the file either.
        let mut f = std::fs::File::create(t.path().join("big.bin")).unwrap();
        let chunk: Vec<u8> = (0..251 * 4096).map(byte_at).collect();
        let mut written = 0;
        while written < SIZE {
            let n = chunk.len().min(SIZE - written);
            f.write_all(&chunk[..n]).unwrap();
            written += n;
        }
    }
    let paths = StaticPaths::new(vec![("/".into(), StaticPathSpec::new(t.path()))], StaticOptions::default()).unwrap();
    let host = Host::start(paths);

    let baseline = rss_kib();
    let mut s = connect(host.addr);
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept-Encoding: gzip\r\n\r\n").unwrap();
    let mut r = BufReader::with_capacity(64 * 1024, s);
    let (status, headers) = read_head(&mut r);
    assert_eq!(status, 200);
    assert_eq!(headers["content-length"][0], SIZE.to_string());
    assert!(!headers.contains_key("content-encoding"), "binary is never gzipped");

    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    let mut peak = baseline;
    let mut reads = 0u64;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for (k, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, byte_at(got + k), "byte {}", got + k);
        }
        got += n;
        reads += 1;
        if reads % 64 == 0 {
            peak = peak.max(rss_kib());
            // Read slowly at first so the server has every chance to run ahead of us.
            if got < SIZE / 8 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
    assert_eq!(got, SIZE);
    let grown_mib = peak.saturating_sub(baseline) / 1024;
    eprintln!("baseline {baseline} KiB, peak {peak} KiB");
    assert!(grown_mib < 24, "resident memory grew by {grown_mib} MiB while streaming 64 MiB");
}
