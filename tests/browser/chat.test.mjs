// End-to-end test of the demo's WebSocket chat (inst/demo-app/www/chat.html, served at
// /chat by inst/demo-app/demo.R) in headless Chromium, driven by playwright-core.
//
//   node tests/browser/chat.test.mjs        (or: bash tests/browser/run.sh)
//
// Starts the demo server (Rscript inst/demo-app/demo.R, with the installed rookd) on a free
// loopback port, opens two pages, sends messages from each, checks that both pages show
// every message, saves a screenshot to tests/browser/artifacts/chat.png, and prints
// "N passed, N failed" as its last line; exits non-zero on any failure.
//
// Env: CHROMIUM (default /usr/bin/chromium), RSCRIPT (default Rscript), CHAT_DEMO (the
//      server script, default inst/demo-app/demo.R),
//      CHAT_TEST_TIMEOUT (seconds for the whole run, default 120), CHAT_DEBUG=1 (timestamps).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const artifacts = path.join(here, "artifacts");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const rscript = process.env.RSCRIPT || "Rscript";
const totalTimeout = Number(process.env.CHAT_TEST_TIMEOUT || 120) * 1000;
const STEP = 15000; // ms for any single expectation

let passed = 0;
let serverProcess = null; // the demo server, killed on any way out
let failed = 0;
const results = [];

async function check(name, fn) {
  if (process.env.CHAT_DEBUG) console.log(new Date().toISOString(), "start", name);
  try {
    await fn();
    passed++;
    results.push(`ok   ${name}`);
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    const msg = String((e && e.message) || e).split("\n").slice(0, 6).join("\n     ");
    results.push(`FAIL ${name}`);
    console.log(`FAIL ${name}\n     ${msg}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function fetchText(url) {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: r.status, text: await r.text(), type: r.headers.get("content-type") };
}

async function waitForServer(base, child, log) {
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`the demo server exited (${child.exitCode}):\n${log.join("")}`);
    }
    try {
      const r = await fetchText(base + "/");
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error(`the demo server did not answer within 60 s:\n${log.join("")}`);
}

// The chat messages a page shows, as "name: text".
function messagesOf(page) {
  return page.$$eval("#messages li.chat", (lis) =>
    lis.map((li) => `${li.querySelector(".name").textContent}: ${li.querySelector(".text").textContent}`));
}

async function waitForMessages(page, want) {
  await page.waitForFunction(
    (n) => document.querySelectorAll("#messages li.chat").length >= n, want.length, { timeout: STEP });
  const got = await messagesOf(page);
  assert(JSON.stringify(got) === JSON.stringify(want),
    `messages differ:\n got  ${JSON.stringify(got)}\n want ${JSON.stringify(want)}`);
}

async function send(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

async function main() {
  mkdirSync(artifacts, { recursive: true });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const log = [];
  const demo = process.env.CHAT_DEMO || path.join(root, "inst", "demo-app", "demo.R");
  const server = spawn(rscript, [demo], {
    cwd: root,
    env: { ...process.env, ROOKD_DEMO_HOST: "127.0.0.1", ROOKD_DEMO_PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  serverProcess = server;
  server.stdout.on("data", (d) => log.push(String(d)));
  server.stderr.on("data", (d) => log.push(String(d)));
  const userDataDir = mkdtempSync(path.join(os.tmpdir(), "rookd-chromium-"));
  let context = null;
  try {
    await waitForServer(base, server, log);

    await check("the demo's other routes still work (/, /echo, 404)", async () => {
      const home = await fetchText(base + "/");
      assert(home.text.includes("Hello from rookd"), "/ lacks its heading");
      assert(home.text.includes('href="/chat"'), "/ does not link to /chat");
      const echo = await fetchText(base + "/echo?x=1");
      assert(echo.status === 200 && echo.text.startsWith("GET /echo"), `/echo: ${echo.status} ${echo.text}`);
      const missing = await fetchText(base + "/nope");
      assert(missing.status === 404, `/nope gave ${missing.status}`);
      const chat = await fetchText(base + "/chat");
      assert(chat.status === 200 && /text\/html/.test(chat.type), `/chat: ${chat.status} ${chat.type}`);
    });

    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ],
      viewport: { width: 900, height: 640 },
      timeout: 30000,
    });
    context.setDefaultTimeout(STEP);
    const errors = [];
    const open = async (name) => {
      const page = await context.newPage();
      page.on("pageerror", (e) => errors.push(`${name}: ${e.message}`));
      await page.goto(base + "/chat", { waitUntil: "load" });
      await page.fill("#name", name);
      await page.dispatchEvent("#name", "change");
      await page.waitForSelector("body[data-state=open]");
      return page;
    };

    let alice = null;
    let bob = null;
    await check("two pages open the chat and connect", async () => {
      alice = await open("alice");
      bob = await open("bob");
      for (const p of [alice, bob]) {
        assert((await p.textContent("#status")) === "connected", "status is not 'connected'");
      }
    });
    if (!alice || !bob) return;

    await check("both pages see 2 online", async () => {
      for (const p of [alice, bob]) {
        await p.waitForFunction(() => document.querySelector("#online").textContent === "2 online");
      }
    });

    const m1 = "Hello from Alice \u2713 (h\u00e9llo, \u03b5\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac)";
    const m2 = "Hi Alice! <b>not bold</b> & \"quotes\"";
    const m3 = "line one\nline two";
    const want = [`alice: ${m1}`, `bob: ${m2}`, `alice: ${m3}`];

    await check("a message from alice reaches both pages", async () => {
      await send(alice, m1);
      await waitForMessages(alice, want.slice(0, 1));
      await waitForMessages(bob, want.slice(0, 1));
    });

    await check("a reply from bob reaches both pages, as text (no HTML injection)", async () => {
      await send(bob, m2);
      await waitForMessages(alice, want.slice(0, 2));
      await waitForMessages(bob, want.slice(0, 2));
      assert((await alice.$$("#messages li.chat b")).length === 0, "HTML in a message was rendered");
    });

    await check("a multi-line message keeps its lines", async () => {
      // Shift+Enter starts a new line; Enter sends.
      await alice.click("#text");
      await alice.keyboard.type("line one");
      await alice.keyboard.press("Shift+Enter");
      await alice.keyboard.type("line two");
      await alice.keyboard.press("Enter");
      await waitForMessages(alice, want);
      await waitForMessages(bob, want);
    });

    await check("own messages are marked as such", async () => {
      const mine = await alice.$$eval("#messages li.chat", (lis) => lis.map((li) => li.classList.contains("mine")));
      assert(JSON.stringify(mine) === "[true,false,true]", `alice's 'mine' marks: ${JSON.stringify(mine)}`);
    });

    await check("a page that joins later gets the history", async () => {
      const carol = await open("carol");
      try {
        await waitForMessages(carol, want);
        await alice.waitForFunction(() => document.querySelector("#online").textContent === "3 online");
      } finally {
        await carol.close();
      }
      await alice.waitForFunction(() => document.querySelector("#online").textContent === "2 online");
    });

    await check("screenshot saved to tests/browser/artifacts/chat.png", async () => {
      await alice.screenshot({ path: path.join(artifacts, "chat.png"), fullPage: true });
    });

    await check("closing a page updates the count on the other", async () => {
      await bob.close();
      try {
        await alice.waitForFunction(() => document.querySelector("#online").textContent === "1 online");
      } catch (e) {
        throw new Error(`alice shows "${await alice.textContent("#online")}" (${await alice.textContent("#status")}); ` +
          (await alice.$$eval("#messages li.system", (l) => l.map((x) => x.textContent))).join(" | "));
      }
    });

    await check("no JavaScript errors on the pages", async () => {
      assert(errors.length === 0, errors.join("\n"));
    });
  } finally {
    if (context) await context.close().catch(() => {});
    server.kill("SIGTERM");
    await Promise.race([new Promise((r) => server.once("exit", r)), sleep(3000)]);
    if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
    rmSync(userDataDir, { recursive: true, force: true });
    if (failed > 0) console.log(`--- the demo server's output:\n${log.join("").trimEnd()}\n---`);
  }
}

const timer = setTimeout(() => {
  console.log(`FAIL the whole run took more than ${totalTimeout / 1000} s`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  if (serverProcess) serverProcess.kill("SIGKILL");
  process.exit(1);
}, totalTimeout);

try {
  await main();
} catch (e) {
  failed++;
  console.log(`FAIL ${String((e && e.stack) || e)}`);
}
clearTimeout(timer);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
