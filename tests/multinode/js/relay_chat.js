#!/usr/bin/env node
// Official socket.io-client v4 clients behind a plain round-robin balancer (the session relay).
//
// Usage: node relay_chat.js '{"url": "...", "room": "r", "timeout_ms": 40000, "rounds": 4,
//                             "expect": ["line said by another client", ...],
//                             "clients": [{"name": "p1", "transports": ["polling"]}, ...]}'
//
// Nothing ties a client to a node: every HTTP request of a session may reach any process,
// which relays it to the session's owner. Each client connects and waits for "welcome"
// (clients that may upgrade, for the upgrade too), asks "pid" (the owning process), acks
// "rounds" text and binary "echo"s and joins "room". Then the script prints one JSON line
// {"stage": "ready", "clients": [...]} and waits for a line on stdin (the test's clients
// say their lines meanwhile). Then every client says "line from <name>" to the room, and
// every client must hear every client's line plus the "expect" lines. Prints the report
// {"stage": "done", "ok", "error"?, "clients": [{name, node, pid, sid, eid, transport,
// upgraded, echoes, heard, errors}]} and exits (status 0 when ok). "sid" is the Socket.IO
// id, "eid" the Engine.IO session id (the one in the URLs, prefixed with its owner's id).
"use strict";

const path = require("path");
const readline = require("readline");
const { io } = require(path.join(__dirname, "..", "..", "js", "node_modules", "socket.io-client"));

const cfg = JSON.parse(process.argv[2]);
const timeoutMs = cfg.timeout_ms || 40000;
const rounds = cfg.rounds === undefined ? 4 : cfg.rounds;
const clients = [];
let finished = false;

function report(c) {
  const engine = c.socket.io.engine;
  return {
    name: c.name, node: c.node, pid: c.pid, sid: c.sid, eid: c.eid,
    transport: engine && engine.transport && engine.transport.name,
    upgraded: c.upgraded, echoes: c.echoes, heard: c.heard.slice().sort(), errors: c.errors,
  };
}

function finish(ok, error) {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify({ stage: "done", ok, error, clients: clients.map(report) }) + "\n");
  for (const c of clients) c.socket.close();
  // let the close packets (a POST for polling clients) go out before exiting
  setTimeout(() => process.exit(ok ? 0 : 1), 300);
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
    reconnection: false,
    forceNew: true,
    timeout: 5000,
  });
  const c = {
    name: spec.name, socket, node: null, pid: null, sid: null, eid: null, upgraded: false,
    echoes: 0, heard: [], errors: [],
    mayUpgrade: spec.transports.length > 1 && spec.transports[0] === "polling",
  };
  c.welcome = new Promise((resolve) => socket.on("welcome", (w) => {
    c.node = w.node; c.sid = w.sid; c.eid = socket.io.engine.id; resolve();
  }));
  c.upgrade = new Promise((resolve) => {
    if (!c.mayUpgrade) { resolve(); return; }
    socket.io.on("open", () => {
      const engine = socket.io.engine;
      if (engine.transport.name === "websocket") { c.upgraded = true; resolve(); }
      engine.on("upgrade", () => { c.upgraded = true; resolve(); });
      engine.on("upgradeError", (err) => c.errors.push(`upgradeError: ${String(err && err.message)}`));
    });
  });
  socket.on("said", (msg) => c.heard.push(msg.text));
  socket.on("connect_error", (err) => c.errors.push(`connect_error: ${String(err && err.message)}`));
  socket.on("disconnect", (reason) => { if (!finished) c.errors.push(`disconnect: ${reason}`); });
  socket.io.on("error", (err) => c.errors.push(`error: ${String(err && err.message)}`));
  clients.push(c);
  return c;
}

async function echoes(c) {
  for (let i = 0; i < rounds; i++) {
    const text = { name: c.name, i, s: "é€😀".repeat(i + 1) };
    const back = await c.socket.timeout(5000).emitWithAck("echo", text);
    if (JSON.stringify(back) !== JSON.stringify(text)) throw new Error(`${c.name}: text echo ${JSON.stringify(back)}`);
    const bytes = Buffer.alloc(1000 + 97 * i, 0);
    for (let j = 0; j < bytes.length; j++) bytes[j] = (j * 7 + i) & 0xff;
    const bin = await c.socket.timeout(5000).emitWithAck("echo", { name: c.name, i, bytes });
    if (!Buffer.isBuffer(bin.bytes) || !bin.bytes.equals(bytes) || bin.i !== i) {
      throw new Error(`${c.name}: binary echo ${i} differs`);
    }
    c.echoes += 2;
  }
}

function stdinLine() {
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin });
    rl.once("line", (line) => { rl.close(); resolve(line); });
  });
}

async function main() {
  for (const spec of cfg.clients) start(spec);
  await withTimeout(Promise.all(clients.map((c) => c.welcome)), "welcome");
  await withTimeout(Promise.all(clients.map((c) => c.upgrade)), "upgrade");
  await withTimeout(Promise.all(clients.map(async (c) => { c.pid = await c.socket.timeout(5000).emitWithAck("pid"); })), "pid");
  await withTimeout(Promise.all(clients.map(echoes)), "echo");
  await withTimeout(Promise.all(clients.map((c) => c.socket.timeout(5000).emitWithAck("join", cfg.room))), "join");
  process.stdout.write(JSON.stringify({ stage: "ready", clients: clients.map(report) }) + "\n");
  await withTimeout(stdinLine(), "go");
  const lines = clients.map((c) => `line from ${c.name}`);
  const acks = await withTimeout(
    Promise.all(clients.map((c, i) => c.socket.timeout(5000).emitWithAck("say", cfg.room, lines[i]))),
    "say",
  );
  if (!acks.every((a) => a === "sent")) throw new Error(`say acks: ${JSON.stringify(acks)}`);
  const expected = lines.concat(cfg.expect || []).sort();
  const deadline = Date.now() + timeoutMs / 2;
  while (Date.now() < deadline) {
    if (clients.every((c) => c.heard.length >= expected.length)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // the last polls and WebSocket frames after the broadcast: still served, still relayed
  await withTimeout(Promise.all(clients.map(echoes)), "echo after say");
  const same = (c) => JSON.stringify(c.heard.slice().sort()) === JSON.stringify(expected);
  const clean = (c) => c.errors.length === 0 && (!c.mayUpgrade || c.upgraded);
  const ok = clients.every((c) => same(c) && clean(c));
  finish(ok, ok ? undefined : "a client missed a line, failed to upgrade or saw an error");
}

main().catch((err) => finish(false, String(err && err.message)));
