#!/usr/bin/env node
// Connection state recovery with the official socket.io-client (v4.6+, nothing special
// configured): connect, ask the server for ticks (an event per few ms to a room), drop
// the connection mid-stream, let the client reconnect, and check that it came back as
// itself (socket.recovered, the same id, its rooms and session) and that every tick
// arrived exactly once, in order. Usage:
//   node recovery_client.js '{"url": ..., "transports": [...], "drop": "engine-close" |
//       "kill-tcp" | "external", "ticks": 400, "drop_after": 100, "drops": 1,
//       "timeout_ms": 20000, "failover_url": ..., "external_ticks": false}'
// "external": at the drop point print {"type": "drop-now"} and let the test cut the
// connection (kill the server); "failover_url": reconnect there after the first drop
// (another node); "external_ticks": the test starts the ticks (else the "start" event).
// Prints {"type": "connected"} at the first connect, then one JSON line: {"ok": bool, ...}.
"use strict";

const { io } = require("socket.io-client");

const sc = JSON.parse(process.argv[2]);
const report = { ok: false, drops: [], recovered: [], ids: [] };
const seen = [];
let dropsLeft = sc.drops || 1;
let nextDropAt = sc.drop_after;

function finish(ok, error) {
  report.ok = ok;
  if (error) report.error = String(error);
  report.count = seen.length;
  report.first_gap = seen.findIndex((n, i) => n !== i);
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exit(ok ? 0 : 1);
}

const timer = setTimeout(() => finish(false, `timeout with ${seen.length} ticks`), sc.timeout_ms || 20000);

const socket = io(sc.url, {
  transports: sc.transports,
  auth: { name: "carol" },
  reconnectionDelay: 100,
  reconnectionDelayMax: 200,
});

function drop() {
  report.drops.push({ at: seen.length, transport: socket.io.engine.transport.name });
  if (sc.failover_url) socket.io.uri = sc.failover_url; // the next connection: another node
  if (sc.drop === "external") {
    process.stdout.write(JSON.stringify({ type: "drop-now" }) + "\n");
  } else if (sc.drop === "kill-tcp") {
    // the TCP connection dies without a close frame or packet (a network cut)
    socket.io.engine.transport.ws._socket.destroy();
  } else {
    socket.io.engine.close(); // the transport closes (Engine.IO CLOSE packet)
  }
}

socket.on("tick", (n, offset) => {
  if (typeof offset !== "string") return finish(false, `tick ${n} without an offset`);
  seen.push(n);
  if (dropsLeft > 0 && seen.length === nextDropAt) {
    dropsLeft -= 1;
    nextDropAt += sc.drop_after;
    drop();
  }
  if (seen.length === sc.ticks) {
    const ok = seen.every((v, i) => v === i);
    socket.emit("whoami", (me) => {
      report.me = me;
      clearTimeout(timer);
      const whole = ok && report.recovered.slice(1).every(Boolean) &&
        new Set(report.ids).size === 1 && me.session && me.session.name === "carol" &&
        me.rooms.includes("ticks");
      finish(whole, whole ? null : "ticks or state not intact");
    });
  }
});

let started = false;
socket.on("connect", () => {
  report.recovered.push(socket.recovered);
  report.ids.push(socket.id);
  if (!started) {
    started = true;
    process.stdout.write(JSON.stringify({ type: "connected", id: socket.id }) + "\n");
    if (!sc.external_ticks) socket.emit("start", sc.ticks, sc.interval_ms || 2);
  }
});
socket.on("connect_error", (err) => report.drops.push({ connect_error: String(err) }));
