// What the browser scenarios share (chat_scenario.js, admin_ui_scenario.js): one JSON line
// per step on stdout, and a headless run of the system's Chromium (never a downloaded one)
// with a fresh profile, screenshots of every page when the scenario fails, and the final
//   {"done": true, "ok": bool, "error"?: "..."}   line and exit status.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-dev-shm-usage",
];

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

async function step(name, fn) {
  const t0 = Date.now();
  const extra = (await fn()) || {};
  out({ step: name, ok: true, ms: Date.now() - t0, ...extra });
}

function readScenario() {
  return JSON.parse(fs.readFileSync(0, "utf8"));
}

// Launch Chromium for scenario `sc` ({chromium, screenshot, ...}), run `body(browser)`,
// report and exit. `prefix` names the temporary profile directory.
async function runInChromium(sc, prefix, body) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  let browser;
  let failed = null;
  try {
    // launch() gives Chromium a fresh, temporary --user-data-dir of its own;
    // HOME points at another fresh directory so nothing is read from the real one.
    browser = await chromium.launch({
      executablePath: sc.chromium, headless: true, args: ARGS, timeout: 30000,
      env: { ...process.env, HOME: profile },
    });
    await body(browser);
  } catch (err) {
    failed = String((err && err.stack) || err);
    if (browser) {
      const shots = [];
      for (const [i, ctx] of browser.contexts().entries()) {
        for (const [j, page] of ctx.pages().entries()) {
          const file = sc.screenshot.replace(/\.png$/, `-failure-${i}-${j}.png`);
          try { await page.screenshot({ path: file }); shots.push(file); } catch (_) { /* closed */ }
        }
      }
      out({ type: "failure-screenshots", paths: shots });
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
  out({ done: true, ok: failed === null, error: failed });
  process.exit(failed === null ? 0 : 1);
}

module.exports = { out, step, readScenario, runInChromium };
