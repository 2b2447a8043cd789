// A Shiny app (tests/frameworks/shiny-pool) behind rookd's worker pool
// (rookd::serveWorkers(dir, workers = 2)), in headless Chromium: two browser sessions
// (separate cookie jars) land on different workers, and each page's HTML, its
// WebSocket session and its reload stay on that session's worker.
//
//   node tests/frameworks/shiny-pool.test.mjs      (or: bash tests/frameworks/run.sh)
//
// Prints "ok"/"FAIL" per check and "N passed, N failed" last. Env: CHROMIUM, RSCRIPT.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const require = createRequire(path.join(root, "tests", "browser", "package.json"));
const { chromium } = require("playwright-core");
const rscript = process.env.RSCRIPT || "Rscript";
const STEP = 20000;

let passed = 0;
let failed = 0;
let server = null;
let log = "";

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   shiny-pool: ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL shiny-pool: ${name}\n     ${String((e && e.message) || e).split("\n").slice(0, 8).join("\n     ")}`);
  }
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

async function waitUp(url, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`the pool exited:\n${log}`);
    try { if ((await fetch(url)).ok) return; } catch (e) { /* not yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the pool did not answer within ${ms} ms:\n${log}`);
}

// Open the app in a fresh context; returns {page, html, session} (pids as strings).
async function openSession(browser, base) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(base + "/", { waitUntil: "load" });
  await page.waitForFunction(() => (document.querySelector("#sessionpid")?.textContent || "").startsWith("session "),
                             null, { timeout: STEP });
  const html = (await page.locator("#htmlpid").textContent()).trim();
  const session = (await page.locator("#sessionpid").textContent()).replace("session ", "").trim();
  return { context, page, html, session };
}

async function main() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const code = `rookd::serveWorkers(${JSON.stringify(path.join(here, "shiny-pool"))}, workers = 2L, port = ${port}L)`;
  server = spawn(rscript, ["-e", code], { stdio: ["ignore", "pipe", "pipe"] });
  server.stdout.on("data", (d) => (log += d));
  server.stderr.on("data", (d) => (log += d));
  await waitUp(base + "/", 90000);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  try {
    const a = await openSession(browser, base);
    const b = await openSession(browser, base);
    await check("each page's WebSocket session runs on the worker that served its HTML", async () => {
      assert(a.html === a.session, `page A: HTML from ${a.html}, session on ${a.session}`);
      assert(b.html === b.session, `page B: HTML from ${b.html}, session on ${b.session}`);
    });
    await check("two browser sessions are on two different workers", async () => {
      assert(a.session !== b.session, `both on ${a.session}`);
    });
    await check("an input updates an output in each session", async () => {
      for (const [s, n] of [[a, "21"], [b, "5"]]) {
        await s.page.fill("#n", n);
        await s.page.press("#n", "Tab");
        await s.page.waitForFunction((w) => (document.querySelector("#double")?.textContent || "") === w,
                                     `2n = ${2 * Number(n)}`, { timeout: STEP });
      }
    });
    await check("a reload (a reconnect) stays on the session's worker", async () => {
      await a.page.reload({ waitUntil: "load" });
      await a.page.waitForFunction(() => (document.querySelector("#sessionpid")?.textContent || "").startsWith("session "),
                                   null, { timeout: STEP });
      const again = (await a.page.locator("#sessionpid").textContent()).replace("session ", "").trim();
      assert(again === a.session, `after reload on ${again}, before on ${a.session}`);
    });
    await a.context.close();
    await b.context.close();
  } finally {
    await browser.close();
  }
}

const timer = setTimeout(() => {
  console.log("FAIL shiny-pool: the whole run took over 180 s");
  if (server) server.kill("SIGTERM");
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, 180000);
try {
  await main();
} catch (e) {
  failed++;
  console.log(`FAIL shiny-pool: ${String((e && e.message) || e).split("\n").slice(0, 20).join("\n     ")}`);
} finally {
  clearTimeout(timer);
  if (server && server.exitCode === null) server.kill("SIGTERM");
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
