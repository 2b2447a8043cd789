//! Path traversal over real sockets: raw request lines a browser would never send.
mod statics_support;

use rookd_engine::statics::{StaticOptions, StaticPathOptionsOverride, StaticPathSpec, StaticPaths, Symlinks};
use statics_support::{get, raw, Host, TempDir};

const SECRET: &str = "TOP-SECRET-CONTENT";

fn setup(name: &str) -> (TempDir, Host) {
    let t = TempDir::new(name);
    t.write("secret.txt", SECRET);
    t.write("root/public.txt", "public");
    t.write("root/sub/inner.txt", "inner");
    t.write("elsewhere/linked.txt", "linked from outside");
    std::os::unix::fs::symlink(t.path().join("secret.txt"), t.path().join("root/escape.txt")).unwrap();
    std::os::unix::fs::symlink(t.path(), t.path().join("root/up")).unwrap();
    std::os::unix::fs::symlink(t.path().join("root/public.txt"), t.path().join("root/alias.txt")).unwrap();
    std::os::unix::fs::symlink(t.path().join("elsewhere"), t.path().join("root/ext")).unwrap();
    std::os::unix::fs::symlink(t.path().join("root/sub"), t.path().join("root/subalias")).unwrap();
    std::os::unix::fs::symlink(t.path().join("root/loop-b"), t.path().join("root/loop-a")).unwrap();
    std::os::unix::fs::symlink(t.path().join("root/loop-a"), t.path().join("root/loop-b")).unwrap();
    std::os::unix::fs::symlink(t.path().join("root/gone.txt"), t.path().join("root/dangling.txt")).unwrap();
    let with_mode = |m| StaticPathSpec {
        path: t.path().join("root"),
        options: StaticPathOptionsOverride { symlinks: Some(m), ..Default::default() },
    };
    // "/s" has the default mode (follow, as httpuv): request-path traversal must still fail.
    let paths = StaticPaths::new(
        vec![
            ("/s".into(), StaticPathSpec::new(t.path().join("root"))),
            ("/inside".into(), with_mode(Symlinks::Inside)),
            ("/refuse".into(), with_mode(Symlinks::Refuse)),
        ],
        StaticOptions::default(),
    )
    .unwrap();
    let host = Host::start(paths);
    (t, host)
}

fn line(host: &Host, target: &[u8]) -> statics_support::Reply {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    raw(host.addr, &req, false)
}

#[test]
fn traversal_forms_are_refused() {
    let (_t, host) = setup("trav");
    assert_eq!(get(host.addr, "/s/public.txt").text(), "public");
    let attempts: &[&[u8]] = &[
        b"/s/../secret.txt",
        b"/s/sub/../../secret.txt",
        b"/s/..",
        b"/s/%2e%2e/secret.txt",
        b"/s/%2E%2E/secret.txt",
        b"/s/.%2e/secret.txt",
        b"/s/%2e%2e%2fsecret.txt",
        b"/s/..%2fsecret.txt",
        b"/s/sub%2f..%2f..%2fsecret.txt",
        b"/s/%00",
        b"/s/public.txt%00.html",
        b"/s/public.txt\0",
        b"/s/%c0%ae%c0%ae/secret.txt",
        b"/s/%252e%252e/secret.txt",
    ];
    for a in attempts {
        let r = line(&host, a);
        let shown = String::from_utf8_lossy(a);
        eprintln!("{shown:?} -> {}", r.status);
        assert!(r.status == 400 || r.status == 404, "{shown}: {}", r.status);
        assert!(!r.text().contains(SECRET), "{shown} leaked the secret");
    }
    assert!(host.app_saw().is_empty(), "nothing above under /s reaches the app");
    // As in httpuv: a backslash makes the request the app's (the engine never opens such
    // a name), and "." segments are dropped.
    for a in [&b"/s/..%5csecret.txt"[..], b"/s/..\\secret.txt", b"/s/sub%5Cinner.txt"] {
        let r = line(&host, a);
        assert!(!r.text().contains(SECRET), "{:?} leaked the secret", String::from_utf8_lossy(a));
    }
    assert_eq!(host.app_saw().len(), 3, "backslash paths went to the app");
    assert_eq!(line(&host, b"/s/./public.txt").text(), "public");
    assert_eq!(line(&host, b"/s/%2e/sub/./inner.txt").text(), "inner");
}

#[test]
fn symlinks_follow_by_default_and_the_option_narrows_them() {
    let (_t, host) = setup("links");
    let status = |p: &str| get(host.addr, p).status;
    // (link, follow, inside, refuse): a file and a directory, each pointing in and out.
    let cases = [
        ("alias.txt", 200, 200, 404),
        ("subalias/inner.txt", 200, 200, 404),
        ("escape.txt", 200, 404, 404),
        ("ext/linked.txt", 200, 404, 404),
        ("up/secret.txt", 200, 404, 404),
        ("public.txt", 200, 200, 200),
        ("loop-a", 404, 404, 404),
        ("dangling.txt", 404, 404, 404),
    ];
    for (p, f, i, r) in cases {
        let got = [status(&format!("/s/{p}")), status(&format!("/inside/{p}")), status(&format!("/refuse/{p}"))];
        assert_eq!(got, [f, i, r], "{p}");
    }
    // What a followed link serves is its target; its media type comes from the link's name.
    let r = get(host.addr, "/s/ext/linked.txt");
    assert_eq!(r.text(), "linked from outside");
    assert_eq!(get(host.addr, "/s/escape.txt").text(), SECRET);
    let r = get(host.addr, "/inside/alias.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "public"));
    assert!(host.app_saw().is_empty(), "refused links are 404s, not passed to the app");
}
