// A real Shiny app (tests/frameworks/shiny/app) run on rookd with
// rookd::with_rookd(shiny::runApp(dir, port = P, launch.browser = FALSE)), driven in
// headless Chromium by playwright-core (the copy tests/browser installs).
//
//   node tests/frameworks/shiny.test.mjs      (or: bash tests/frameworks/run.sh)
//
// Prints "ok"/"FAIL" per check and "N passed, N failed" as its last line; exits
// non-zero on any failure.
// Env: CHROMIUM (default /usr/bin/chromium), RSCRIPT (default Rscript),
//      FRAMEWORKS_TEST_TIMEOUT (seconds for the whole run, default 240).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const require = createRequire(path.join(root, "tests", "browser", "package.json"));
const { chromium } = require("playwright-core");

const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const rscript = process.env.RSCRIPT || "Rscript";
const totalTimeout = Number(process.env.FRAMEWORKS_TEST_TIMEOUT || 240) * 1000;
const STEP = 15000; // ms for any single expectation

let passed = 0;
let failed = 0;
let server = null;
let serverLog = "";

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   shiny: ${name}`);
  } catch (e) {
    failed++;
    const msg = String((e && e.message) || e).split("\n").slice(0, 8).join("\n     ");
    console.log(`FAIL shiny: ${name}\n     ${msg}`);
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

async function waitForServer(url, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`the Shiny server exited:\n${serverLog}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch (e) { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the Shiny server did not answer within ${ms} ms:\n${serverLog}`);
}

function stopServer() {
  if (server && server.exitCode === null) server.kill("SIGTERM");
}

// Debian's r-cran-shiny 1.7.4 ships strftime as strftime.min.js while Shiny asks for
// strftime-min.js: a 404 under httpuv too (FRAMEWORKS_ENGINE=httpuv shows it). That one
// URL is forgiven only while the file really is missing from the installed Shiny.
const strftimeMissing = spawnSync(rscript, ["-e",
  'cat(nzchar(system.file("www/shared/strftime/strftime-min.js", package = "shiny")))'],
  { encoding: "utf8" }).stdout.trim() === "FALSE";
function forgiven(url) {
  return strftimeMissing && /\/strftime-[0-9.]+\/strftime-min\.js$/.test(url);
}

// Collects every response and failed request of a page.
function networkLog(page) {
  const log = { bad: [], failedRequests: [], websockets: [] };
  page.on("response", (r) => {
    if (r.status() >= 400 && !forgiven(r.url())) log.bad.push(`${r.status()} ${r.url()}`);
  });
  page.on("requestfailed", (r) => {
    if (!forgiven(r.url())) log.failedRequests.push(`${r.url()} ${r.failure()?.errorText}`);
  });
  page.on("websocket", (ws) => log.websockets.push(ws));
  return log;
}

async function textOf(page, sel) {
  return (await page.locator(sel).textContent()) ?? "";
}

async function waitText(page, sel, want, ms = STEP) {
  await page.waitForFunction(
    ([s, w]) => {
      const el = document.querySelector(s);
      return el && el.textContent.includes(w);
    },
    [sel, want],
    { timeout: ms },
  );
}

async function main() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  server = spawn(rscript, [path.join(here, "shiny", "serve.R"), String(port)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stdout.on("data", (d) => (serverLog += d));
  server.stderr.on("data", (d) => (serverLog += d));
  await waitForServer(base + "/", 60000);

  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const tmp = mkdtempSync(path.join(os.tmpdir(), "rookd-shiny-"));
  try {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const net1 = networkLog(page);
    await page.goto(base + "/", { waitUntil: "load" });

    await check("the WebSocket connects and outputs render", async () => {
      await waitText(page, "#product", "n*s = 50");
      assert(net1.websockets.length >= 1, "no WebSocket was opened");
      assert(!net1.websockets[0].isClosed(), "the WebSocket closed");
    });
    await check("the server is rookd (httpuv routed by with_rookd)", async () => {
      await waitText(page, "#engine", "engine: rookd");
    });
    await check("every script and stylesheet loads (no 4xx/5xx, no failed request)", async () => {
      const assets = await page.evaluate(() =>
        [...document.querySelectorAll("script[src], link[rel=stylesheet][href]")]
          .map((e) => e.src || e.href));
      assert(assets.length >= 5, `only ${assets.length} scripts/stylesheets on the page`);
      assert(net1.bad.length === 0, `error responses:\n${net1.bad.join("\n")}`);
      assert(net1.failedRequests.length === 0, `failed requests:\n${net1.failedRequests.join("\n")}`);
      const jq = await page.evaluate(() => typeof window.jQuery);
      assert(jq === "function", `jQuery did not load (typeof jQuery = ${jq})`);
    });
    await check("an input updates an output", async () => {
      await page.fill("#n", "7");
      await page.press("#n", "Tab");
      await waitText(page, "#product", "n*s = 70");
    });
    await check("the plot renders as an <img> with a data: PNG", async () => {
      await page.waitForFunction(() => {
        const img = document.querySelector("#plot img");
        return img && img.src.startsWith("data:image/png;base64,") && img.naturalWidth > 0;
      }, null, { timeout: STEP });
    });
    await check("a file uploads", async () => {
      const file = path.join(tmp, "upload.txt");
      writeFileSync(file, "first line of the upload\nsecond line\n");
      await page.setInputFiles("#up", file);
      await waitText(page, "#upinfo", "uploaded upload.txt (37 bytes): first line of the upload");
    });
    await check("a file downloads", async () => {
      const [download] = await Promise.all([
        page.waitForEvent("download", { timeout: STEP }),
        page.click("#dl"),
      ]);
      const saved = path.join(tmp, "download.txt");
      await download.saveAs(saved);
      const text = readFileSync(saved, "utf8");
      assert(download.suggestedFilename() === "numbers.txt",
             `suggested file name ${download.suggestedFilename()}`);
      assert(text === "n = 7\ns = 10\n", `downloaded ${JSON.stringify(text)}`);
    });
    await check("two pages (sessions) stay independent", async () => {
      const page2 = await context.newPage();
      const net2 = networkLog(page2);
      await page2.goto(base + "/", { waitUntil: "load" });
      await waitText(page2, "#product", "n*s = 50");
      await page2.fill("#n", "3");
      await page2.press("#n", "Tab");
      await waitText(page2, "#product", "n*s = 30");
      await page.waitForTimeout(300);
      const one = await textOf(page, "#product");
      assert(one.includes("n*s = 70"), `page 1 now shows ${JSON.stringify(one)}`);
      assert(net2.bad.length === 0, `page 2 error responses:\n${net2.bad.join("\n")}`);
      await page2.close();
    });
    await check("static files are served while R is busy (Sys.sleep(3) in an observer)", async () => {
      await page.click("#busy");
      await page.waitForTimeout(500); // the observer is now sleeping
      const t0 = Date.now();
      const r = await fetch(base + "/hello.txt");
      const body = await r.text();
      const took = Date.now() - t0;
      const doneEarly = (await textOf(page, "#busydone")).includes("busy done");
      assert(r.status === 200 && body === "static hello from www\n",
             `GET /hello.txt: ${r.status} ${JSON.stringify(body)}`);
      assert(!doneEarly, "the observer had already finished: R was not busy during the fetch");
      assert(took < 1500, `the static file took ${took} ms while R was busy`);
      await waitText(page, "#busydone", "busy done 1");
    });
    await context.close();
  } finally {
    await browser.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

const timer = setTimeout(() => {
  console.log(`FAIL shiny: the whole run took over ${totalTimeout / 1000} s`);
  failed++;
  stopServer();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(1);
}, totalTimeout);

try {
  await main();
} catch (e) {
  failed++;
  console.log(`FAIL shiny: ${String((e && e.message) || e).split("\n").slice(0, 20).join("\n     ")}`);
} finally {
  clearTimeout(timer);
  stopServer();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
