#!/usr/bin/env node
// Official socket.io-client v4 clients against several workers without sticky routing.
//
// Usage: node relay_clients.js '{"url": "...", "clients": 20, "transports": ["polling"],
//                                 "echoes": 5, "room": "r", "timeout_ms": 30000}'
//
// Each client opens with the given transports (a new TCP connection per HTTP
// request, "agent": false, so that its requests really spread over the workers),
// asks which process serves it (pid), echoes JSON and binary payloads with acks,
// joins "room" and says one line there; every client must hear every line.
// Prints one JSON object: {"ok", "error"?, "clients": [{sid, pid, transport, echoed,
// heard, errors}]}. Exit status 0 when ok.
"use strict";

const path = require("path");
const { io } = require(path.join(__dirname, "..", "..", "js", "node_modules", "socket.io-client"));

const cfg = JSON.parse(process.argv[2]);
const timeoutMs = cfg.timeout_ms || 30000;
const count = cfg.clients || 10;
const echoes = cfg.echoes || 3;
const clients = [];

function finish(ok, error) {
  const report = clients.map((c) => ({
    sid: c.socket.io.engine && c.socket.io.engine.id,
    pid: c.pid,
    transport: c.socket.io.engine && c.socket.io.engine.transport && c.socket.io.engine.transport.name,
    echoed: c.echoed,
    heard: c.heard.length,
    errors: c.errors,
  }));
  process.stdout.write(JSON.stringify({ ok, error, clients: report }) + "\n");
  for (const c of clients) c.socket.close();
  process.exit(ok ? 0 : 1);
}

setTimeout(() => finish(false, "timeout"), timeoutMs);

function ack(socket, event, ...args) {
  return socket.timeout(timeoutMs / 2).emitWithAck(event, ...args);
}

function start(index) {
  const socket = io(cfg.url, {
    transports: cfg.transports || ["polling", "websocket"],
    reconnection: false,
    forceNew: true,
    agent: false,
  });
  const c = { socket, pid: null, echoed: 0, heard: [], errors: [] };
  socket.on("said", (msg) => c.heard.push(msg.text));
  socket.on("connect_error", (err) => c.errors.push("connect_error: " + String(err && err.message)));
  socket.io.on("error", (err) => c.errors.push("error: " + String(err && err.message)));
  socket.on("disconnect", (reason) => { if (!c.done) c.errors.push("disconnect: " + reason); });
  c.connected = new Promise((resolve) => socket.on("connect", resolve));
  clients.push(c);
  return c;
}

async function run(c, index) {
  await c.connected;
  c.pid = await ack(c.socket, "pid");
  for (let i = 0; i < echoes; i++) {
    const json = { i, client: index, text: "é".repeat(i + 1) };
    const got = await ack(c.socket, "echo", json);
    if (JSON.stringify(got) !== JSON.stringify(json)) throw new Error("echo mismatch " + JSON.stringify(got));
    const bytes = Buffer.from([index & 255, i & 255, 0, 255]);
    const back = await ack(c.socket, "echo", bytes);
    if (!Buffer.from(back).equals(bytes)) throw new Error("binary echo mismatch");
    c.echoed += 2;
  }
  await ack(c.socket, "join", cfg.room);
}

(async () => {
  try {
    for (let i = 0; i < count; i++) start(i);
    await Promise.all(clients.map((c, i) => run(c, i)));
    await Promise.all(clients.map((c, i) => ack(c.socket, "say", cfg.room, "line " + i)));
    const deadline = Date.now() + timeoutMs / 2;
    while (clients.some((c) => c.heard.length < count) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const c of clients) c.done = true;
    const ok = clients.every((c) => c.heard.length === count && c.errors.length === 0 && c.echoed === 2 * echoes);
    finish(ok, ok ? undefined : "incomplete");
  } catch (err) {
    finish(false, String(err && err.stack || err));
  }
})();
