#!/usr/bin/env node
// Official socket.io-client v4 clients chat through a cookie-sticky load balancer.
//
// Usage: node cookie_chat.js '{"url": "...", "room": "r", "timeout_ms": 20000, "serial": false,
//                              "rounds": 5, "credentials": true,
//                              "clients": [{"name": "p1", "transports": ["polling"]}, ...]}'
//
// Every client is created with `withCredentials: true` (unless "credentials" is false): in
// node that is what turns on engine.io-client's cookie jar (it stores the handshake's
// Set-Cookie and sends it with every later polling request and with the WebSocket
// upgrade). Nothing else (no X-Forwarded-For) tells the clients apart, so only the cookie
// can keep them sticky.
//
// Each client connects (one after the other when "serial"), waits for "welcome"; clients
// that may upgrade wait for the upgrade; polling-only clients ask "node" "rounds" times
// (each a POST plus a long-poll answer). Then every client joins "room" and says one
// line, and every client must hear every line. Prints one JSON object:
// {"ok", "error"?, "clients": [{name, node, sid, transport, upgraded, nodes_asked,
// heard, cookie, errors, failed}]}. Exit status 0 when ok.
"use strict";

const path = require("path");
const { io } = require(path.join(__dirname, "..", "..", "js", "node_modules", "socket.io-client"));

const cfg = JSON.parse(process.argv[2]);
const timeoutMs = cfg.timeout_ms || 20000;
const rounds = cfg.rounds === undefined ? 5 : cfg.rounds;
const credentials = cfg.credentials === undefined ? true : Boolean(cfg.credentials);
const clients = [];

function cookieOf(c) {
  const jar = c.socket.io.engine && c.socket.io.engine._cookieJar;  // private: for the report only
  if (!jar) return null;
  for (const [name, cookie] of jar.cookies) if (name === "io") return cookie.value;
  return null;
}

function finish(ok, error) {
  const report = clients.map((c) => ({
    name: c.name, node: c.node, sid: c.sid, failed: c.failed,
    transport: c.socket.io.engine && c.socket.io.engine.transport && c.socket.io.engine.transport.name,
    upgraded: c.upgraded, nodes_asked: c.nodesAsked, heard: c.heard.slice().sort(),
    cookie: c.cookie || cookieOf(c), errors: c.errors,
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

function start(spec) {
  const socket = io(cfg.url, {
    transports: spec.transports,
    withCredentials: credentials,   // node: enables the cookie jar
    reconnection: false,
    forceNew: true,
    timeout: 5000,
  });
  const c = {
    name: spec.name, socket, node: null, sid: null, upgraded: false, failed: null,
    nodesAsked: [], heard: [], errors: [], cookie: null,
  };
  // settles with true on "welcome", false as soon as the connection fails
  c.settled = new Promise((resolve) => {
    socket.on("welcome", (w) => { c.node = w.node; c.sid = w.sid; c.cookie = cookieOf(c); resolve(true); });
    const fail = (why) => (err) => {
      c.errors.push(`${why}: ${String((err && err.message) || err)}`);
      if (!c.node) { c.failed = why; resolve(false); }
    };
    socket.on("connect_error", fail("connect_error"));
    socket.on("disconnect", fail("disconnect"));
    socket.io.on("error", fail("error"));
  });
  c.upgrade = new Promise((resolve) => {
    if (!spec.transports.includes("websocket")) { resolve(); return; }
    socket.io.on("open", () => {
      const engine = socket.io.engine;
      if (engine.transport.name === "websocket") { c.upgraded = true; resolve(); }
      engine.on("upgrade", () => { c.upgraded = true; c.cookie = c.cookie || cookieOf(c); resolve(); });
    });
  });
  socket.on("said", (msg) => c.heard.push(msg.text));
  clients.push(c);
  return c;
}

async function askNodes(c) {
  for (let i = 0; i < rounds; i++) {
    c.nodesAsked.push(await c.socket.timeout(5000).emitWithAck("node"));
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main() {
  const results = [];
  if (cfg.serial) {
    for (const spec of cfg.clients) results.push(await withTimeout(start(spec).settled, "connect"));
  } else {
    for (const spec of cfg.clients) start(spec);
    results.push(...(await withTimeout(Promise.all(clients.map((c) => c.settled)), "connect")));
  }
  if (!results.every(Boolean)) { finish(false, "some clients could not connect"); return; }
  await withTimeout(Promise.all(clients.map((c) => c.upgrade)), "upgrade");
  await withTimeout(Promise.all(clients.filter((c) => !c.upgraded).map(askNodes)), "rounds");
  await withTimeout(Promise.all(clients.map((c) => c.socket.timeout(5000).emitWithAck("join", cfg.room))), "join");
  const lines = clients.map((c) => `line from ${c.name}`);
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
