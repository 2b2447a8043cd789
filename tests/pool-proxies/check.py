"""Runs nginx and HAProxy, each with its config from inst/deploy (ports replaced), in
front of two rookd processes, and checks stickiness and WebSockets through them."""
import asyncio, http.client, os, shutil, socket, subprocess, sys, tempfile, time

DEPLOY = sys.argv[1]
LIB = os.environ.get("ROOKD_LIB", "")
passed = failed = 0

APP = r'''
lib <- Sys.getenv("ROOKD_LIB"); if (nzchar(lib)) .libPaths(c(lib, .libPaths()))
app <- list(
  call = function(req) list(status = 200L, headers = list("Content-Type" = "text/plain"),
                            body = as.character(Sys.getpid())),
  onWSOpen = function(ws) ws$send(as.character(Sys.getpid())))
rookd::runServer("127.0.0.1", as.integer(commandArgs(TRUE)[1]), app)
'''

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_port(port, secs=30):
    end = time.time() + secs
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close(); return True
        except OSError:
            time.sleep(0.1)
    return False

def check(name, ok, detail=""):
    global passed, failed
    if ok: passed += 1; print("ok   %s" % name)
    else: failed += 1; print("FAIL %s %s" % (name, detail))

def get(port, cookie=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/", headers={"Cookie": cookie} if cookie else {})
    r = c.getresponse(); body = r.read().decode(); c.close()
    sc = r.getheader("Set-Cookie")
    return r.status, body, (sc.split(";")[0] if sc else None)

async def ws_pid(port, cookie):
    import websockets
    try:
        from websockets.asyncio.client import connect
        kw = {"additional_headers": [("Cookie", cookie)]}
    except ImportError:
        from websockets.client import connect
        kw = {"extra_headers": [("Cookie", cookie)]}
    async with connect("ws://127.0.0.1:%d/" % port, open_timeout=10, **kw) as ws:
        return await asyncio.wait_for(ws.recv(), 10)

def run_proxy(name, argv_fn, conf_name, backends):
    binary = shutil.which(name) or ("/usr/sbin/" + name if os.path.exists("/usr/sbin/" + name) else None)
    if not binary:
        check(name + ": binary found", False, "(install %s)" % name); return
    work = tempfile.mkdtemp(prefix="pool-" + name)
    os.makedirs(os.path.join(work, "tmp"))
    port = free_port()
    text = open(os.path.join(DEPLOY, conf_name)).read()
    text = text.replace("127.0.0.1:8001", "127.0.0.1:%d" % backends[0]).replace("127.0.0.1:8002", "127.0.0.1:%d" % backends[1])
    text = text.replace("127.0.0.1:8080", "127.0.0.1:%d" % port)
    conf = os.path.join(work, conf_name); open(conf, "w").write(text)
    proc = subprocess.Popen(argv_fn(binary, work, conf), stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "stderr"), "w"))
    try:
        if not wait_port(port, 10):
            check(name + ": starts with " + conf_name, False, open(os.path.join(work, "stderr")).read()); return
        status, pid, cookie = get(port)
        check(name + ": first response 200 and sets a cookie", status == 200 and cookie is not None, (status, cookie))
        same = [get(port, cookie)[1] for _ in range(6)]
        check(name + ": one client stays on its backend", all(p == pid for p in same), (pid, same))
        seen = {get(port)[1] for _ in range(16)}
        check(name + ": fresh clients reach both backends", len(seen) == 2, seen)
        try:
            got = asyncio.run(ws_pid(port, cookie))
        except Exception as e:
            got = "error: %r" % e
        check(name + ": WebSocket upgrade reaches the client's backend", got == pid, (got, pid))
    finally:
        proc.terminate()
        try: proc.wait(5)
        except subprocess.TimeoutExpired: proc.kill()
        shutil.rmtree(work, ignore_errors=True)

backends = [free_port(), free_port()]
env = dict(os.environ, ROOKD_LIB=LIB)
rs = [subprocess.Popen(["Rscript", "-e", APP, str(p)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in backends]
try:
    if not all(wait_port(p) for p in backends):
        check("rookd backends start", False)
    else:
        run_proxy("nginx", lambda b, w, c: [b, "-p", w, "-c", c], "nginx-pool.conf", backends)
        run_proxy("haproxy", lambda b, w, c: [b, "-f", c, "-db"], "haproxy-pool.cfg", backends)
finally:
    for r in rs:
        r.terminate()
    for r in rs:
        try: r.wait(5)
        except subprocess.TimeoutExpired: r.kill()
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
