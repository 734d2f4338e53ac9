// Drives the Flask or Django chat example in headless Chromium (the system's,
// never a downloaded one) and prints one JSON line per step:
//   {"step": "...", "ok": true, ...}   and finally   {"done": true, "ok": bool, "error"?: "..."}
//
// Usage: node chat_scenario.js < scenario.json, where the scenario is
//   {"base_url", "kind": "flask"|"django", "chromium", "screenshot", "png_b64",
//    "users": {"alice": "password", "bob": "...", "carol": "..."}, "timeout_ms"}
"use strict";

const fs = require("fs");
const path = require("path");
const { out, step, readScenario, runInChromium } = require("./harness");

// ---------------------------------------------------------------- page helpers
async function login(browser, sc, name, transport) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  page.on("pageerror", (err) => out({ type: "pageerror", user: name, text: String(err) }));
  page.on("console", (msg) => {
    if (msg.type() === "error") out({ type: "console", user: name, text: msg.text() });
  });
  const query = transport ? `?transport=${transport}` : "";
  if (sc.kind === "django") {
    await page.goto(`${sc.base_url}/accounts/login/?next=${encodeURIComponent("/" + query)}`);
    await page.fill("#id_username", name);
    await page.fill("#id_password", sc.users[name]);
    await Promise.all([page.waitForURL(`${sc.base_url}/${query}`), page.click("button[type=submit]")]);
  } else {
    await page.goto(`${sc.base_url}/${query}`);
    await page.fill("#name", name);
    await Promise.all([page.waitForURL(`${sc.base_url}/${query}`), page.click("button[type=submit]")]);
  }
  await connected(page);
  return page;
}

async function connected(page) {
  await page.waitForSelector('#status[data-state="connected"]');
  await page.waitForSelector('#rooms li[data-room="lobby"].active');
}

async function transportOf(page) {
  return page.$eval("#transport", (n) => n.dataset.transport);
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

function msgSelector(room, text) {
  return `.log[data-room="${room}"] .msg:has(.text:text-is("${text}"))`;
}

async function attached(page, selector) {
  // messages of rooms that are not shown are in hidden logs: wait for presence
  await page.waitForSelector(selector, { state: "attached" });
}

async function waitText(page, selector, text) {
  await page.waitForFunction(
    ([sel, want]) => { const n = document.querySelector(sel); return !!n && n.textContent.includes(want); },
    [selector, text],
  );
}

// typing events are volatile both ways (the client drops one when its transport
// is busy, the server when a polling client has no GET waiting) and the page
// sends at most one per second: type again, a bounded number of times, until
// the watcher shows the indicator
async function typeUntilSeen(typer, watcher, text, want) {
  for (let attempt = 1; ; attempt++) {
    await typer.fill("#text", "");
    await typer.click("#text");
    await typer.keyboard.type(text, { delay: 20 });
    try {
      await watcher.waitForFunction(
        ([sel, w]) => { const n = document.querySelector(sel); return !!n && n.textContent.includes(w); },
        ["#typing", want], { timeout: 1500 },
      );
      return attempt;
    } catch (err) {
      if (attempt >= 8) throw err;
    }
  }
}

async function members(page) {
  return page.$$eval("#members li", (nodes) => nodes.map((n) => n.dataset.name));
}

// ---------------------------------------------------------------- the scenario
async function run(sc, browser) {
  let alice, bob, carol;
  await step("login", async () => {
    alice = await login(browser, sc, "alice", "polling");
    bob = await login(browser, sc, "bob", "websocket");
    carol = await login(browser, sc, "carol", "");
    return {};
  });

  await step("transports", async () => {
    const a = await transportOf(alice);
    const b = await transportOf(bob);
    if (a !== "polling" || b !== "websocket") throw new Error(`transports: alice=${a} bob=${b}`);
    // the client js came from /socket.io/socket.io.js, served by sio_wsgi
    const status = await alice.evaluate(async () => (await fetch("/socket.io/socket.io.js")).status);
    if (status !== 200) throw new Error(`socket.io.js status ${status}`);
    return { alice: a, bob: b };
  });

  await step("member list", async () => {
    await alice.waitForFunction(() => {
      const names = [...document.querySelectorAll("#members li")].map((n) => n.dataset.name);
      return ["alice", "bob", "carol"].every((n) => names.includes(n));
    });
    return { members: await members(alice) };
  });

  await step("chat polling -> websocket, acks sent/delivered", async () => {
    await say(alice, "hello from alice (polling)");
    await attached(bob, msgSelector("lobby", "hello from alice (polling)"));
    const mine = msgSelector("lobby", "hello from alice (polling)") + ' .receipt[data-status="delivered"]';
    await alice.waitForSelector(mine);
  });

  await step("chat websocket -> polling", async () => {
    await say(bob, "hi alice, bob here (websocket)");
    await attached(alice, msgSelector("lobby", "hi alice, bob here (websocket)"));
    await attached(bob, msgSelector("lobby", "hi alice, bob here (websocket)") + " .receipt[data-status]");
  });

  await step("typing indicator", async () => {
    const attempts = await typeUntilSeen(bob, alice, "I am typing something", "bob is typing");
    await bob.fill("#text", "");
    return { attempts };
  });

  await step("private message reaches only its target", async () => {
    await alice.click('#members li[data-name="bob"]');
    await alice.waitForSelector("#private-to:not([hidden])");
    await say(alice, "psst bob, this is private");
    await attached(bob, msgSelector("@dm", "psst bob, this is private"));
    await attached(alice, msgSelector("@dm", "psst bob, this is private") + ' .receipt[data-status="delivered"]');
    // a public message sent after it: once carol has that one, the private one would be there too
    await alice.click("#private-clear");
    await alice.click('#rooms li[data-room="lobby"]');
    await say(alice, "back in public");
    await attached(carol, msgSelector("lobby", "back in public"));
    const leaked = await carol.evaluate(() => document.body.textContent.includes("psst bob"));
    if (leaked) throw new Error("carol saw the private message");
  });

  await step("rooms: join, member list, message in room", async () => {
    await bob.click('#rooms li[data-room="python"]');
    await bob.waitForSelector('#rooms li[data-room="python"].active');
    await alice.click('#rooms li[data-room="python"]');
    await alice.waitForFunction(() => {
      const names = [...document.querySelectorAll("#members li")].map((n) => n.dataset.name);
      return names.length === 2 && names.includes("alice") && names.includes("bob");
    });
    await say(alice, "anyone into asyncio?");
    await attached(bob, msgSelector("python", "anyone into asyncio?"));
    const carolHas = await carol.evaluate(() => document.body.textContent.includes("asyncio"));
    if (carolHas) throw new Error("carol is not in #python but got its message");
  });

  await step("binary image", async () => {
    const buffer = Buffer.from(sc.png_b64, "base64");
    await alice.setInputFiles("#file", { name: "dot.png", mimeType: "image/png", buffer });
    const img = '.log[data-room="python"] .msg img.shared';
    await bob.waitForSelector(img);
    await bob.waitForFunction((sel) => { const i = document.querySelector(sel); return i.complete && i.naturalWidth > 0; }, img);
    const got = await bob.$eval(img, async (i) => {
      const bytes = new Uint8Array(await (await fetch(i.src)).arrayBuffer());
      return { width: i.naturalWidth, height: i.naturalHeight, size: bytes.length };
    });
    if (got.size !== buffer.length) throw new Error(`image size ${got.size} != ${buffer.length}`);
    await alice.waitForSelector('.log[data-room="python"] .msg.mine:has(img.shared) .receipt[data-status="delivered"]');
    return got;
  });

  await step("POST /announce reaches every page", async () => {
    const text = `server maintenance at ${new Date().toISOString().slice(11, 16)}`;
    const res = await fetch(`${sc.base_url}/announce`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ text }).toString(),
    });
    if (res.status !== 200) throw new Error(`/announce answered ${res.status}: ${await res.text()}`);
    for (const page of [alice, bob, carol]) await waitText(page, "#announcement", text);
  });

  await step("reload reconnects", async () => {
    const before = await bob.evaluate(() => window.chatSocket.id);
    await bob.reload();
    await connected(bob);
    const after = await bob.evaluate(() => window.chatSocket.id);
    if (after === before) throw new Error("same socket id after reload");
    return { before, after, transport: await transportOf(bob) };
  });

  await step("message after reload", async () => {
    await alice.click('#rooms li[data-room="lobby"]');
    await say(alice, "still there after the reload?");
    await attached(bob, msgSelector("lobby", "still there after the reload?"));
    await say(bob, "yes!");
    await attached(alice, msgSelector("lobby", "yes!"));
  });

  await step("screenshot", async () => {
    await alice.click('#members li[data-name="bob"]');
    await alice.fill("#text", "");
    const attempts = await typeUntilSeen(bob, alice, "typing…", "bob is typing");
    fs.mkdirSync(path.dirname(sc.screenshot), { recursive: true });
    await alice.screenshot({ path: sc.screenshot });
    return { path: sc.screenshot, attempts };
  });
}

async function anonymous(sc, browser) {
  await step("anonymous socket is refused", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${sc.base_url}/`);
    await page.waitForSelector('#status[data-state="refused"]');
    const text = await page.$eval("#error-text", (n) => n.textContent);
    await context.close();
    return { message: text };
  });
}

async function main() {
  const sc = readScenario();
  const timeout = sc.timeout_ms || 15000;
  await runInChromium(sc, "sio-chat-chromium-", async (browser) => {
    const origNewContext = browser.newContext.bind(browser);
    browser.newContext = async (opts) => {
      const ctx = await origNewContext(opts);
      ctx.setDefaultTimeout(timeout);
      return ctx;
    };
    if (sc.kind === "django") await anonymous(sc, browser);
    await run(sc, browser);
  });
}

main();
