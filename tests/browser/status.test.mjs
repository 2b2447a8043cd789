// The engine's live status page (rookdOptions(status_path = ...)) in headless Chromium,
// driven by playwright-core: load it under traffic, wait for every chart to draw, check
// the request-rate chart's pixels in a screenshot, and that no request left 127.0.0.1.
//
//   node tests/browser/status.test.mjs      (tests/testthat/test-status-page.R runs it)
//
// Starts a server (Rscript, with the installed rookd) on a free loopback port, sends it
// steady traffic, saves tests/browser/artifacts/status.png, and prints "N passed, N
// failed" as its last line; exits non-zero on any failure.
// Env: CHROMIUM (default /usr/bin/chromium), RSCRIPT (default Rscript).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const artifacts = path.join(here, "artifacts");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const rscript = process.env.RSCRIPT || "Rscript";
const STEP = 20000;
let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n     ${String((e && e.message) || e).split("\n").slice(0, 6).join("\n     ")}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// A PNG's pixels (8-bit RGB or RGBA, not interlaced: what Chromium's screenshots are).
function decodePng(buf) {
  let pos = 8;
  let width = 0, height = 0, colorType = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString("ascii", pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      assert(data[8] === 8 && data[12] === 0, "unexpected PNG format");
      colorType = data[9];
    } else if (type === "IDAT") idat.push(data);
    pos += 12 + len;
  }
  const bpp = colorType === 6 ? 4 : 3;
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const out = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[y * stride + x - bpp] : 0;
      const b = y > 0 ? out[(y - 1) * stride + x] : 0;
      const c = x >= bpp && y > 0 ? out[(y - 1) * stride + x - bpp] : 0;
      let v = line[x];
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[y * stride + x] = v & 255;
    }
  }
  return { width, height, bpp, pixels: out };
}

async function main() {
  mkdirSync(artifacts, { recursive: true });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const code = `library(rookd)
app <- function(req) { Sys.sleep(runif(1, 0, 0.004)); list(status = 200L, headers = list("Content-Type" = "text/plain"), body = "ok") }
runServer("127.0.0.1", ${port}, app, options = rookdOptions(status_path = "/rookd-status"))`;
  const server = spawn(rscript, ["-e", code], { stdio: ["ignore", "pipe", "pipe"] });
  const log = [];
  server.stdout.on("data", (d) => log.push(String(d)));
  server.stderr.on("data", (d) => log.push(String(d)));
  const userDataDir = mkdtempSync(path.join(os.tmpdir(), "rookd-chromium-"));
  let context = null;
  let traffic = true;
  try {
    const deadline = Date.now() + 60000;
    for (;;) {
      try {
        if ((await fetch(base + "/", { signal: AbortSignal.timeout(2000) })).ok) break;
      } catch (e) {}
      assert(server.exitCode === null, `the server exited:\n${log.join("")}`);
      assert(Date.now() < deadline, "the server did not start");
      await sleep(100);
    }
    // Steady traffic: two clients, one request each 10 ms.
    const loads = [0, 1].map(async () => {
      while (traffic) {
        try { await fetch(base + "/work", { signal: AbortSignal.timeout(5000) }); } catch (e) {}
        await sleep(10);
      }
    });

    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1100, height: 800 },
      timeout: 30000,
    });
    context.setDefaultTimeout(STEP);
    const hosts = [];
    context.on("request", (r) => hosts.push(new URL(r.url()).host));
    const errors = [];
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(e.message));

    await check("the status page loads (HTML from the engine)", async () => {
      const resp = await page.goto(base + "/rookd-status", { waitUntil: "load" });
      assert(resp.status() === 200, `status ${resp.status()}`);
      assert(/text\/html/.test(resp.headers()["content-type"]), resp.headers()["content-type"]);
    });

    await check("every chart draws a line with data (SVG paths of 5+ points)", async () => {
      await page.waitForFunction(() => {
        const paths = [...document.querySelectorAll("path.series")];
        return paths.length >= 7 && paths.every((p) => Number(p.getAttribute("data-points")) >= 5 &&
          (p.getAttribute("d").match(/L/g) || []).length >= 4);
      });
    });

    await check("requests/s and latency show the traffic", async () => {
      await page.waitForFunction(() => {
        const v = document.querySelector("#v-rps").textContent;
        return parseFloat(v) > 10;
      });
      const lat = await page.textContent("#v-lat");
      assert(/^[0-9.]+ \/ [0-9.]+ \/ [0-9.]+ ms/.test(lat), `latency label: ${lat}`);
      const state = await page.textContent("#state");
      assert(state.startsWith("ready"), `state: ${state}`);
    });

    await check("screenshot: the requests/s chart has drawn pixels", async () => {
      await page.screenshot({ path: path.join(artifacts, "status.png"), fullPage: true });
      const png = decodePng(await page.locator("#svg-rps").screenshot());
      let blue = 0;
      for (let i = 0; i < png.pixels.length; i += png.bpp) {
        const [r, g, b] = [png.pixels[i], png.pixels[i + 1], png.pixels[i + 2]];
        if (b > 150 && r < 120 && g < 160) blue++;
      }
      assert(blue > 20, `only ${blue} line-coloured pixels in the chart (${png.width}x${png.height})`);
    });

    await check("no request left 127.0.0.1", async () => {
      const away = hosts.filter((h) => h !== `127.0.0.1:${port}`);
      assert(hosts.length > 3, `only ${hosts.length} requests seen`);
      assert(away.length === 0, `requests to: ${[...new Set(away)].join(", ")}`);
    });

    await check("no JavaScript errors on the page", async () => {
      assert(errors.length === 0, errors.join("\n"));
    });
    traffic = false;
    await Promise.all(loads);
  } finally {
    traffic = false;
    if (context) await context.close().catch(() => {});
    server.kill("SIGTERM");
    await Promise.race([new Promise((r) => server.once("exit", r)), sleep(5000)]);
    if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
    rmSync(userDataDir, { recursive: true, force: true });
    if (failed > 0) console.log(`--- the server's output:\n${log.join("").trimEnd()}\n---`);
  }
}

const timer = setTimeout(() => {
  console.log("FAIL the whole run took more than 120 s");
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, 120000);
try {
  await main();
} catch (e) {
  failed++;
  console.log(`FAIL ${String((e && e.message) || e)}`);
}
clearTimeout(timer);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
