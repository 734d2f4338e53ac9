#!/usr/bin/env node
// Scenario driver for the sio_wsgi end-to-end tests, using the official
// socket.io-client v4.
//
// Usage:
//   node driver.js '<scenario JSON>'      (or a path to a .json file, or "-" for stdin)
//
// Scenario:
//   {
//     "url": "http://127.0.0.1:PORT",
//     "timeout_ms": 4000,             per-step default wait bound
//     "overall_timeout_ms": 20000,    hard bound for the whole run
//     "options": {...},               Manager options for every client (transports, ...)
//     "clients": {
//       "a": {"namespace": "/", "manager": "a", "auth": {...},
//             "answers": {"question": VALUE}, "options": {...}}
//     },
//     "steps": [ {"op": "...", ...}, ... ]
//   }
//
// Clients sharing a "manager" name share one Engine.IO connection (multiplexing).
// Ops: connect, emit, wait, wait_upgrade, transport, counts, sleep, disconnect, mark.
// Binary values are written {"$bin": "<base64>", "$as": "buffer|arraybuffer|uint8array"}
// in the scenario and reported as {"$bin": "<base64>", "$type": "Buffer|ArrayBuffer|..."}.
//
// Output: one JSON object per line (received events, acks, lifecycle), then
// {"type":"done","ok":true|false,...}. Exit status 0 when every step passed.
"use strict";

const fs = require("fs");
const { Manager } = require("socket.io-client");

let closing = false; // set once the run is over: teardown events are not reported

function out(obj) {
  if (closing && obj.type !== "done") return;
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// ---- binary <-> JSON -------------------------------------------------------

function decodeValue(v) {
  if (Array.isArray(v)) return v.map(decodeValue);
  if (v && typeof v === "object") {
    if (typeof v.$bin === "string") {
      const buf = Buffer.from(v.$bin, "base64");
      if (v.$as === "arraybuffer") {
        return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
      }
      if (v.$as === "uint8array") return new Uint8Array(buf);
      return buf;
    }
    const o = {};
    for (const k of Object.keys(v)) o[k] = decodeValue(v[k]);
    return o;
  }
  return v;
}

function encodeValue(v) {
  if (Buffer.isBuffer(v)) return { $bin: v.toString("base64"), $type: "Buffer" };
  if (v instanceof ArrayBuffer) {
    return { $bin: Buffer.from(v).toString("base64"), $type: "ArrayBuffer" };
  }
  if (ArrayBuffer.isView(v)) {
    const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    return { $bin: b.toString("base64"), $type: v.constructor.name };
  }
  if (typeof v === "function") return { $fn: true };
  if (Array.isArray(v)) return v.map(encodeValue);
  if (v && typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v)) o[k] = encodeValue(v[k]);
    return o;
  }
  return v === undefined ? null : v;
}

// Human-readable text of a disconnect description / error (which may nest).
function describe(d) {
  if (d === undefined || d === null) return null;
  if (typeof d === "string") return d;
  const parts = [];
  if (d.message) parts.push(String(d.message));
  if (d.description !== undefined) parts.push(describe(d.description));
  if (d.context && d.context.status !== undefined) parts.push(`status ${d.context.status}`);
  if (d.code !== undefined) parts.push(`code ${d.code}`);
  return parts.length ? parts.join(" / ") : String(d);
}

// ---- clients ---------------------------------------------------------------

function parseScenario(arg) {
  if (!arg) throw new Error("usage: node driver.js '<scenario json>' | file.json | -");
  if (arg === "-") return JSON.parse(fs.readFileSync(0, "utf8"));
  if (arg.trim().startsWith("{")) return JSON.parse(arg);
  return JSON.parse(fs.readFileSync(arg, "utf8"));
}

class Client {
  constructor(name, spec, manager) {
    this.name = name;
    this.spec = spec;
    this.counts = {};
    this.waiters = [];
    const opts = { autoConnect: false };
    if (spec.auth !== undefined) opts.auth = spec.auth;
    this.socket = manager.socket(spec.namespace || "/", opts);
    this.manager = manager;
    this.bind();
  }

  bump(event) {
    this.counts[event] = (this.counts[event] || 0) + 1;
    for (const w of this.waiters.slice()) w();
  }

  record(obj) {
    out(Object.assign({ client: this.name }, obj));
  }

  engine() {
    return this.manager.engine;
  }

  transportName() {
    const e = this.engine();
    return e && e.transport ? e.transport.name : null;
  }

  bind() {
    const s = this.socket;
    s.on("connect", () => {
      const e = this.engine();
      this.record({
        type: "connect", id: s.id, engine_id: e ? e.id : null,
        transport: this.transportName(), recovered: !!s.recovered,
      });
      this.bump("connect");
    });
    s.on("connect_error", (err) => {
      this.record({
        type: "connect_error", message: err && err.message,
        data: err && err.data !== undefined ? encodeValue(err.data) : null,
      });
      this.bump("connect_error");
    });
    s.on("disconnect", (reason, description) => {
      this.record({ type: "disconnect", reason, description: describe(description) });
      this.bump("disconnect");
    });
    s.onAny((event, ...args) => {
      let ack = null;
      if (args.length && typeof args[args.length - 1] === "function") ack = args.pop();
      this.record({ type: "event", event, args: encodeValue(args), with_ack: !!ack });
      if (ack) {
        const answers = this.spec.answers || {};
        const reply = Object.prototype.hasOwnProperty.call(answers, event)
          ? decodeValue(answers[event])
          : { client: this.name, got: encodeValue(args) };
        ack(reply);
      }
      this.bump(event);
    });
  }

  // Resolve when pred() is true, reject after ms.
  until(pred, ms, what) {
    return new Promise((resolve, reject) => {
      if (pred()) return resolve();
      let timer = null;
      const check = () => {
        if (pred()) {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== check);
          resolve();
        }
      };
      timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timeout after ${ms} ms waiting for ${what} on client ${this.name}`));
      }, ms);
      this.waiters.push(check);
    });
  }
}

// ---- steps -----------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pollUntil(pred, ms, what) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      if (pred()) return resolve();
      if (Date.now() - start > ms) return reject(new Error(`timeout after ${ms} ms waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

const OPS = {
  async connect(ctx, step, c, ms) {
    const before = { ok: c.counts.connect || 0, err: c.counts.connect_error || 0 };
    c.socket.connect();
    await c.until(
      () => (c.counts.connect || 0) > before.ok || (c.counts.connect_error || 0) > before.err,
      ms, "connect/connect_error",
    );
    const got = (c.counts.connect || 0) > before.ok ? "connect" : "connect_error";
    const expect = step.expect || "connect";
    if (got !== expect) throw new Error(`expected ${expect}, got ${got}`);
  },

  async emit(ctx, step, c, ms) {
    const args = decodeValue(step.args || []);
    const label = step.label || step.event;
    if (!step.ack) {
      c.socket.emit(step.event, ...args);
      return;
    }
    const resp = await new Promise((resolve, reject) => {
      c.socket.timeout(ms).emit(step.event, ...args, (err, ...res) => {
        if (err) reject(new Error(`no ack for ${step.event} within ${ms} ms`));
        else resolve(res);
      });
    });
    out({ client: c.name, type: "ack", label, event: step.event, args: encodeValue(resp) });
  },

  async wait(ctx, step, c, ms) {
    const n = step.count || 1;
    await c.until(() => (c.counts[step.event] || 0) >= n, ms, `${n} x ${step.event}`);
  },

  async wait_upgrade(ctx, step, c, ms) {
    await pollUntil(() => c.transportName() === "websocket", ms, "upgrade to websocket");
    c.record({ type: "transport", name: c.transportName() });
  },

  async transport(ctx, step, c) {
    c.record({ type: "transport", name: c.transportName(), engine_id: c.engine() ? c.engine().id : null });
  },

  async counts(ctx, step, c) {
    c.record({ type: "counts", counts: Object.assign({}, c.counts) });
  },

  async sleep(ctx, step) {
    await sleep(step.ms || 100);
  },

  async disconnect(ctx, step, c) {
    c.socket.disconnect();
  },

  async mark(ctx, step) {
    out({ type: "mark", name: step.name });
  },
};

async function run(sc, ctx) {
  const url = sc.url;
  const stepMs = sc.timeout_ms || 4000;
  const managers = ctx.managers;
  const clients = ctx.clients;
  for (const [name, spec] of Object.entries(sc.clients || { a: {} })) {
    const mname = spec.manager || name;
    if (!managers[mname]) {
      const opts = Object.assign(
        { autoConnect: false, reconnection: false, timeout: stepMs },
        sc.options || {}, spec.options || {},
      );
      const m = new Manager(url, opts);
      m.on("reconnect_attempt", (n) => out({ type: "manager", manager: mname, event: "reconnect_attempt", n }));
      m.on("reconnect", (n) => out({ type: "manager", manager: mname, event: "reconnect", n }));
      m.on("error", (e) => out({ type: "manager", manager: mname, event: "error", message: describe(e) }));
      managers[mname] = m;
    }
    clients[name] = new Client(name, spec, managers[mname]);
  }
  const steps = sc.steps || [];
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i];
    const fn = OPS[step.op];
    if (!fn) throw new Error(`step ${i}: unknown op ${step.op}`);
    const cname = step.client || "a";
    const c = clients[cname];
    if (!c && !["sleep", "mark"].includes(step.op)) throw new Error(`step ${i}: unknown client ${cname}`);
    try {
      await fn(ctx, step, c, step.timeout_ms || stepMs);
    } catch (e) {
      e.message = `step ${i} (${step.op} ${step.event || ""}): ${e.message}`;
      throw e;
    }
  }
}

function closeAll(ctx) {
  closing = true;
  if (!ctx) return;
  for (const c of Object.values(ctx.clients)) {
    try { c.socket.disconnect(); } catch (e) { /* closing anyway */ }
  }
  for (const m of Object.values(ctx.managers)) {
    try { if (m.engine) m.engine.close(); } catch (e) { /* closing anyway */ }
  }
}

// Report the result, close every socket, and exit once stdout is flushed
// (writes to a pipe are asynchronous in node: exiting early truncates them).
function finish(ctx, hard, doneLine, code) {
  out(doneLine);
  closeAll(ctx);
  clearTimeout(hard);
  process.stdout.write("", () => process.exit(code));
}

function main() {
  let sc;
  try {
    sc = parseScenario(process.argv[2]);
  } catch (e) {
    out({ type: "done", ok: false, error: `bad scenario: ${e.message}` });
    process.stdout.write("", () => process.exit(2));
    return;
  }
  const overall = sc.overall_timeout_ms || 20000;
  const hard = setTimeout(() => {
    out({ type: "done", ok: false, error: `overall timeout ${overall} ms` });
    process.stdout.write("", () => process.exit(3));
  }, overall);
  const ctx = { clients: {}, managers: {} };
  run(sc, ctx).then(
    () => finish(ctx, hard, { type: "done", ok: true }, 0),
    (e) => finish(ctx, hard, { type: "done", ok: false, error: e.message }, 1),
  );
}

main();
