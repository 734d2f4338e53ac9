#!/usr/bin/env node
// Several official socket.io-client v4 clients chat through a load balancer.
//
// Usage: node chat.js '{"url": "...", "ips": ["10.1.0.5", ...], "room": "r", "timeout_ms": 20000}'
//
// Each client (one per entry of "ips", sent as X-Forwarded-For so the balancer's
// ip_hash sees distinct client addresses) connects polling-first, waits for the
// upgrade to websocket, joins "room" and says one line; every client must then
// hear every line. Prints one JSON object: {"ok", "clients": [{ip, node, sid,
// transport, upgraded, heard}], "error"?}. Exit status 0 when ok.
"use strict";

const path = require("path");
const { io } = require(path.join(__dirname, "..", "..", "js", "node_modules", "socket.io-client"));

const cfg = JSON.parse(process.argv[2]);
const timeoutMs = cfg.timeout_ms || 20000;
const clients = [];

function finish(ok, error) {
  const report = clients.map((c) => ({
    ip: c.ip, node: c.node, sid: c.sid, transport: c.socket.io.engine && c.socket.io.engine.transport.name,
    upgraded: c.upgraded, heard: c.heard.sort(), errors: c.errors,
  }));
  process.stdout.write(JSON.stringify({ ok, error, clients: report }) + "\n");
  for (const c of clients) c.socket.close();
  process.exit(ok ? 0 : 1);
}

setTimeout(() => finish(false, "timeout"), timeoutMs);

function withTimeout(promise, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(what)), timeoutMs / 2)),
  ]);
}

function start(ip) {
  const socket = io(cfg.url, {
    transports: ["polling", "websocket"],
    extraHeaders: { "X-Forwarded-For": ip },
    reconnection: false,
    forceNew: true,
  });
  const c = { ip, socket, node: null, sid: null, upgraded: false, heard: [], errors: [] };
  c.welcome = new Promise((resolve) => socket.on("welcome", (w) => { c.node = w.node; c.sid = w.sid; resolve(); }));
  c.upgrade = new Promise((resolve) => {
    socket.io.on("open", () => {
      const engine = socket.io.engine;
      if (engine.transport.name === "websocket") { c.upgraded = true; resolve(); }
      engine.on("upgrade", () => { c.upgraded = true; resolve(); });
    });
  });
  socket.on("said", (msg) => c.heard.push(msg.text));
  socket.on("connect_error", (err) => c.errors.push(String(err && err.message)));
  socket.io.on("error", (err) => c.errors.push(String(err && err.message)));
  clients.push(c);
  return c;
}

async function main() {
  for (const ip of cfg.ips) start(ip);
  await withTimeout(Promise.all(clients.map((c) => c.welcome)), "welcome");
  await withTimeout(Promise.all(clients.map((c) => c.upgrade)), "upgrade");
  await withTimeout(Promise.all(clients.map((c) => c.socket.timeout(5000).emitWithAck("join", cfg.room))), "join");
  const lines = clients.map((c) => `line from ${c.ip}`);
  await withTimeout(
    Promise.all(clients.map((c, i) => c.socket.timeout(5000).emitWithAck("say", cfg.room, lines[i]))),
    "say",
  );
  const expected = lines.slice().sort();
  const deadline = Date.now() + timeoutMs / 2;
  while (Date.now() < deadline) {
    if (clients.every((c) => c.heard.length >= expected.length)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const ok = clients.every((c) => JSON.stringify(c.heard.slice().sort()) === JSON.stringify(expected));
  finish(ok, ok ? undefined : "not every client heard every line");
}

main().catch((err) => finish(false, String(err && err.message)));
