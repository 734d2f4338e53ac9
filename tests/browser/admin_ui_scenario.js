// Drives the official Socket.IO Admin UI (examples/admin_ui) in headless Chromium
// (the system's, never a downloaded one) and prints one JSON line per step:
//   {"step": "...", "ok": true, ...}   and finally   {"done": true, "ok": bool, "error"?: "..."}
//
// Usage: node admin_ui_scenario.js < scenario.json, where the scenario is
//   {"base_url", "chromium", "screenshot", "username", "password", "timeout_ms"}
//
// Two demo pages connect (rooms "red" and "blue"); the UI logs in (a wrong password
// first), lists both sockets and their rooms, and disconnects the "blue" one from
// its Sockets table; the blue page must then see "io server disconnect".
// Requests leaving 127.0.0.1 (the UI's web fonts) are aborted: the test runs offline.
"use strict";

const fs = require("fs");
const path = require("path");
const { out, step, readScenario, runInChromium } = require("./harness");

async function newPage(browser, sc, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(sc.timeout_ms || 15000);
  const local = new URL(sc.base_url).host;
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    return url.host === local ? route.continue() : route.abort();
  });
  const page = await context.newPage();
  page.on("pageerror", (err) => out({ type: "pageerror", page: name, text: String(err) }));
  return page;
}

async function demoClient(browser, sc, room) {
  const page = await newPage(browser, sc, room);
  await page.goto(`${sc.base_url}/?room=${room}`);
  await page.waitForSelector('#status[data-state="connected"]');
  const sid = await page.textContent("#sid");
  return { page, sid };
}

async function login(page, sc, password) {
  const dialog = page.locator(".v-dialog");
  await dialog.getByLabel("Server URL").fill(sc.base_url);
  await dialog.getByLabel("Username").fill(sc.username);
  await dialog.getByLabel("Password").fill(password);
  await dialog.getByRole("button", { name: "Connect" }).click();
}

async function run(sc, browser) {
  let red, blue, admin;
  await step("two demo clients connect", async () => {
    red = await demoClient(browser, sc, "red");
    blue = await demoClient(browser, sc, "blue");
    return { red: red.sid, blue: blue.sid };
  });

  await step("wrong password is refused", async () => {
    admin = await newPage(browser, sc, "admin");
    await admin.goto(`${sc.base_url}/admin-ui/`);
    await login(admin, sc, sc.password + "-wrong");
    await admin.getByText("Invalid credentials").waitFor();
  });

  await step("log in", async () => {
    await login(admin, sc, sc.password);
    await admin.locator(".v-dialog").waitFor({ state: "hidden" });
  });

  // navigation as a user does it: the drawer's links and the tables' rows
  const nav = (name) => admin.locator(".v-navigation-drawer").getByText(name, { exact: true });
  // a socket's row in the Sockets table (its IP address column tells it from room rows)
  const socketRow = (sid) => admin.locator("tr", { hasText: sid }).filter({ hasText: "127.0.0.1" });

  await step("both sockets listed", async () => {
    await nav("Sockets").click();
    await socketRow(red.sid).waitFor();
    await socketRow(blue.sid).waitFor();
  });

  await step("their rooms listed", async () => {
    await socketRow(blue.sid).click(); // the socket's details: its rooms
    await admin.getByText("Socket details").first().waitFor();
    await admin.locator("tr", { hasText: /^\s*blue\s*$/ }).first().waitFor();
    await nav("Rooms").click();
    await admin.locator("tr", { hasText: "red" }).first().waitFor();
    await admin.locator("tr", { hasText: "blue" }).first().waitFor();
  });

  await step("disconnect one socket from the UI", async () => {
    await nav("Sockets").click();
    const row = socketRow(blue.sid);
    await row.locator("button").click();
    await blue.page.waitForSelector('#status[data-state="disconnected"]');
    const reason = await blue.page.textContent("#reason");
    if (reason !== "io server disconnect") throw new Error(`blue's reason: ${reason}`);
    // the click reaches the row too, which opens the socket's details: back to the list
    await nav("Sockets").click();
    await socketRow(red.sid).waitFor();
    await socketRow(blue.sid).waitFor({ state: "detached" });
    const redState = await red.page.getAttribute("#status", "data-state");
    if (redState !== "connected") throw new Error(`red is ${redState}`);
    // the server's own list (GET /sockets: sio.fetch_sids()), while red is still open
    const { sids } = await (await fetch(`${sc.base_url}/sockets`)).json();
    return { reason, disconnected: blue.sid, still_connected: red.sid, server_sids: sids };
  });

  await step("screenshot", async () => {
    fs.mkdirSync(path.dirname(sc.screenshot), { recursive: true });
    await nav("Dashboard").click();
    await admin.locator("canvas").first().waitFor();
    await admin.screenshot({ path: sc.screenshot });
    return { path: sc.screenshot };
  });
}

async function main() {
  const sc = readScenario();
  await runInChromium(sc, "sio-admin-chromium-", (browser) => run(sc, browser));
}

main();
