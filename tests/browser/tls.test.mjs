// HTTPS in headless Chromium: a page with 40 assets from a static path, served by rookd
// over TLS with a development certificate (tests/browser/tls-site.R), loads with no failed
// request. The browser trusts the certificate by its key
// (--ignore-certificate-errors-spki-list); every entry came over HTTP/2 (ALPN h2).
//
//   node tests/browser/tls.test.mjs        (or: bash tests/browser/run.sh)
//
// Prints "N passed, N failed" as its last line; exits non-zero on any failure.
// Env: CHROMIUM (default /usr/bin/chromium), RSCRIPT (default Rscript).
import { spawn } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const rscript = process.env.RSCRIPT || "Rscript";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
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

async function main() {
  const tmp = mkdtempSync(path.join(os.tmpdir(), "rookd-tls-browser-"));
  const info = path.join(tmp, "info");
  const log = [];
  const server = spawn(rscript, [path.join(here, "tls-site.R"), info], { stdio: ["ignore", "pipe", "pipe"] });
  server.stdout.on("data", (d) => log.push(String(d)));
  server.stderr.on("data", (d) => log.push(String(d)));
  let context = null;
  try {
    const deadline = Date.now() + 60000;
    while (!existsSync(info)) {
      if (server.exitCode !== null || Date.now() > deadline) throw new Error(`no server:\n${log.join("")}`);
      await sleep(100);
    }
    const [port, certFile] = readFileSync(info, "utf8").trim().split(" ");
    // The leaf is the first certificate of the chain file.
    const leafPem = readFileSync(certFile, "utf8").split(/(?<=-----END CERTIFICATE-----)/)[0];
    const spki = new X509Certificate(leafPem).publicKey.export({ type: "spki", format: "der" });
    const spkiHash = createHash("sha256").update(spki).digest("base64");
    context = await chromium.launchPersistentContext(mkdtempSync(path.join(tmp, "profile-")), {
      executablePath,
      headless: true,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        `--ignore-certificate-errors-spki-list=${spkiHash}`,
      ],
      timeout: 30000,
    });
    context.setDefaultTimeout(15000);
    const page = await context.newPage();
    const failedRequests = [];
    page.on("requestfailed", (r) => failedRequests.push(`${r.url()}: ${r.failure()?.errorText}`));
    const statuses = [];
    page.on("response", (r) => statuses.push(r.status()));
    await check("a page with 40 assets loads over HTTPS with no failed request", async () => {
      const resp = await page.goto(`https://127.0.0.1:${port}/site/index.html`, { waitUntil: "load" });
      assert(resp && resp.status() === 200, `index: ${resp && resp.status()}`);
      assert(failedRequests.length === 0, `failed: ${failedRequests.join("; ")}`);
      assert(statuses.length === 41 && statuses.every((s) => s === 200), `statuses: ${statuses.join(",")}`);
      assert((await page.evaluate(() => window.loaded)) === 20, "not every script ran");
    });
    await check("every entry came over HTTP/2 (ALPN h2)", async () => {
      const protos = await page.evaluate(() =>
        performance.getEntries().filter((e) => "nextHopProtocol" in e).map((e) => e.nextHopProtocol));
      const names = await page.evaluate(() => performance.getEntries().filter((e) => "nextHopProtocol" in e).map((e) => e.name));
      assert(names.filter((n) => /\/site\/(style|script)/.test(n)).length === 40, `entries: ${names.join(" ")}`);
      assert(protos.length >= 41, `${protos.length} entries`);
      const seen = [...new Set(protos)];
      console.log(`     nextHopProtocol: ${seen.join(", ")}`);
      assert(protos.every((p) => p === "h2"), `protocols: ${seen.join(", ")}`);
    });
  } catch (e) {
    failed++;
    console.log(`FAIL setup\n     ${String((e && e.message) || e)}`);
  } finally {
    if (context) await context.close().catch(() => {});
    server.kill("SIGKILL");
  }
}

const timer = setTimeout(() => {
  console.log("FAIL the whole run took over 120 s");
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, 120000);
await main();
clearTimeout(timer);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
