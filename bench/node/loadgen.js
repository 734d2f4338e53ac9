#!/usr/bin/env node
// Load generator for the sio_wsgi benchmark suite.
//
// Speaks the Engine.IO v4 / Socket.IO v5 wire protocol itself, over raw WebSocket (the `ws` package)
// and over HTTP long-polling (node's http module with a keep-alive agent): handshake, namespace
// connect, events with acks, binary attachments, answering pings. The connect storm's clients
// (StormClient) write their WebSocket handshake and frames by hand on TCP sockets, without `ws`,
// so that the load generator costs less per connection than the servers it measures. Many clients per process; with
// --procs N the clients are split over N child processes and the results are merged.
//
// Usage:
//   node loadgen.js --url http://127.0.0.1:5000 --scenario echo --clients 50 --duration 4
// Scenarios: echo, binary, poll (long-polling echo), fanout, storm.
// echo takes --payload_bytes N: the event's data is a JSON list of chat-like records with repeated
// keys of about N bytes (makePayload, the same every run), instead of --payload. There are
// PAYLOAD_VARIANTS of them, each client sending them in turn, so that no message repeats within
// the last 32 KiB a deflate context keeps; each ack is checked to be as long as expected. --deflate 1 makes the WebSocket clients offer
// permessage-deflate (ws's client defaults: threshold 1024, context takeover, client_max_window_bits
// offered) and reports how many clients the server accepted it for and the agreed extension.
// WebSocket echo reports the bytes read and written on the clients' TCP sockets in the window.
// fanout takes --urls a,b,...: the receivers are spread round-robin over these servers (nodes
// sharing a message bus), the trigger still connects to --url; the default is --url alone. echo and
// poll take --urls too: client i talks to urls[i % n] only (sticky routing done by the clients).
// poll takes --keepalive 0: every HTTP request on a new connection (`Connection: close`), so that
// the requests of one client land on any worker of a multi-worker server (the session relay's
// benchmark); the default, 1, keeps connections alive. echo takes --upgrade 1: each client opens
// its session with a long-polling handshake (on a new connection) and then upgrades to WebSocket
// (2probe / 3probe / 5) on another connection, which may land on another worker.
// Output: one JSON object per line on stdout; the last one has "final": true. For `storm`, a line
// {"phase":"connected"} is printed once every client is connected; the clients are then held idle
// for --hold seconds (the caller measures server memory meanwhile).
'use strict';

const crypto = require('crypto');
const http = require('http');
const net = require('net');
const { fork } = require('child_process');
const WebSocket = require('ws');

function parseArgs(argv) {
  const o = {
    url: 'http://127.0.0.1:5000', scenario: 'echo', clients: 50, duration: 4, warmup: 1,
    procs: 1, window: 1, size: 65536, rounds: 20, gap: 0.05, hold: 3, concurrency: 200,
    timeout: 60, payload: 'hello', urls: '', payload_bytes: 0, deflate: 0, keepalive: 1, upgrade: 0,
  };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    const v = argv[i + 1];
    o[k] = (typeof o[k] === 'number') ? Number(v) : v;
  }
  return o;
}

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms, CLOCK_MONOTONIC: shared by processes

// ------------------------------------------------------------------ Socket.IO over WebSocket

class WsClient {
  // One Socket.IO client over a raw WebSocket, namespace "/". upgrade: open the session with a
  // long-polling handshake, then upgrade it to WebSocket.
  constructor(base, handlers, deflate, upgrade) {
    this.url = base;
    this.upgrade = Boolean(upgrade);
    this.deflate = Boolean(deflate); // offer permessage-deflate
    this.agreed = null; // the server's Sec-WebSocket-Extensions answer ('' when none)
    this.base = base.replace(/^http/, 'ws');
    this.h = handlers || {};
    this.nextId = 1;
    this.acks = new Map();
    this.pendingBinary = null; // {id, header} waiting for its attachment
  }

  async connect() {
    let query = '';
    if (this.upgrade) {
      const open = await request(this.url, 'GET', '/socket.io/?EIO=4&transport=polling', undefined, false);
      query = `&sid=${JSON.parse(open.slice(1)).sid}`;
    }
    return this.open(query);
  }

  open(query) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${this.base}/socket.io/?EIO=4&transport=websocket${query}`, {
        perMessageDeflate: this.deflate ? { threshold: 1024 } : false,
      });
      if (query) ws.on('open', () => ws.send('2probe'));
      this.ws = ws;
      ws.on('upgrade', (res) => { this.agreed = res.headers['sec-websocket-extensions'] || ''; });
      let done = false;
      const fail = (e) => { if (!done) { done = true; reject(e); } };
      ws.on('error', fail);
      ws.on('close', () => { fail(new Error('closed')); if (this.h.close) this.h.close(); });
      ws.on('message', (data, isBinary) => {
        if (isBinary) { this.onBinary(data); return; }
        const s = data.toString();
        const t = s.charCodeAt(0);
        if (t === 50) { ws.send('3'); return; } // '2' ping -> '3' pong
        if (t === 48) { ws.send('40'); return; } // '0' open -> connect namespace
        if (s === '3probe') { ws.send('5'); ws.send('40'); return; } // upgraded -> connect
        if (t === 52) {
          if (s.charCodeAt(1) === 48) { done = true; resolve(this); return; } // '40{sid}'
          this.onSio(s);
          return;
        }
        if (t === 49) ws.close(); // '1' close
      });
    });
  }

  onSio(s) {
    const t = s.charCodeAt(1);
    if (t === 51) { // '3' ack: 43<id>[...]
      const b = s.indexOf('[');
      const id = Number(s.slice(2, b));
      const cb = this.acks.get(id);
      if (cb) { this.acks.delete(id); cb(s); }
    } else if (t === 50) { // '2' event
      if (this.h.event) this.h.event(s);
    } else if (t === 54) { // '6' binary ack: 46<n>-<id>[...]
      const dash = s.indexOf('-');
      const b = s.indexOf('[');
      this.pendingBinary = { id: Number(s.slice(dash + 1, b)), n: Number(s.slice(2, dash)), parts: [] };
    }
  }

  onBinary(buf) {
    const p = this.pendingBinary;
    if (!p) return;
    p.parts.push(buf);
    if (p.parts.length < p.n) return;
    this.pendingBinary = null;
    const cb = this.acks.get(p.id);
    if (cb) { this.acks.delete(p.id); cb(p.parts); }
  }

  emitAck(json, cb) { // json: the array text, e.g. '["echo","x"]'
    const id = this.nextId++;
    this.acks.set(id, cb);
    this.ws.send(`42${id}${json}`);
  }

  emitBinaryAck(event, buf, cb) {
    const id = this.nextId++;
    this.acks.set(id, cb);
    this.ws.send(`451-${id}["${event}",{"_placeholder":true,"num":0}]`);
    this.ws.send(buf, { binary: true });
  }

  emit(json) { this.ws.send(`42${json}`); }

  // [bytes read, bytes written] on the TCP socket so far (frame headers included)
  wire() {
    const sock = this.ws && this.ws._socket;
    return sock ? [sock.bytesRead, sock.bytesWritten] : [0, 0];
  }

  close() { try { this.ws.terminate(); } catch (e) { /* already gone */ } }
}

// ------------------------------------------------------------------ the storm's client

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MASK = crypto.randomBytes(4); // one masking key per process: the frames are built once

// A client text frame (FIN, masked with MASK) carrying `text` (under 126 bytes).
function maskedText(text) {
  const payload = Buffer.from(text);
  const frame = Buffer.alloc(6 + payload.length);
  frame[0] = 0x81;
  frame[1] = 0x80 | payload.length;
  MASK.copy(frame, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ MASK[i % 4];
  return frame;
}

const FRAME_CONNECT = maskedText('40'); // Socket.IO CONNECT to "/"
const FRAME_PONG = maskedText('3');
const FRAME_CLOSE = Buffer.from([0x88, 0x80, ...MASK]); // Close, no status

// The connect storm's client: the same Engine.IO / Socket.IO exchange as WsClient (WebSocket-only
// handshake, OPEN, CONNECT to "/", its reply), written by hand on a TCP socket instead of the `ws`
// package, so that the load generator's own cost per connection is small next to the server's and
// the storm measures the server. The upgrade request goes out in one write; the 101 answer's
// status and Sec-WebSocket-Accept are checked; the server's frames (text, unmasked, a whole
// message per frame as every server under test sends them) are parsed here; pings are answered.
class StormClient {
  constructor(base) {
    const u = new URL(base);
    this.host = u.hostname;
    this.port = Number(u.port);
    this.sock = null;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const key = crypto.randomBytes(16).toString('base64');
      const accept = crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
      const sock = net.connect(this.port, this.host);
      this.sock = sock;
      sock.setNoDelay(true);
      let head = true;
      let buf = Buffer.alloc(0);
      let done = false;
      const fail = (e) => { if (!done) { done = true; sock.destroy(); reject(e); } };
      sock.on('error', fail);
      sock.on('close', () => fail(new Error('closed')));
      sock.on('connect', () => {
        sock.write(`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: ${this.host}:${this.port}\r\n`
          + `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n`
          + 'Sec-WebSocket-Version: 13\r\n\r\n');
      });
      sock.on('data', (chunk) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
        if (head) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const text = buf.toString('latin1', 0, end).toLowerCase();
          if (!text.startsWith('http/1.1 101') || !text.includes(`sec-websocket-accept: ${accept.toLowerCase()}`)) {
            fail(new Error(`bad handshake answer: ${text.split('\r\n')[0]}`));
            return;
          }
          head = false;
          buf = buf.subarray(end + 4);
        }
        while (buf.length >= 2) {
          const opcode = buf[0] & 0x0f;
          let len = buf[1] & 0x7f;
          let at = 2;
          if (len === 126) {
            if (buf.length < 4) return;
            len = buf.readUInt16BE(2);
            at = 4;
          } else if (len === 127) {
            if (buf.length < 10) return;
            len = Number(buf.readBigUInt64BE(2));
            at = 10;
          }
          if (buf.length < at + len) return;
          const payload = buf.subarray(at, at + len);
          buf = buf.subarray(at + len);
          if (opcode === 8) { sock.end(FRAME_CLOSE); fail(new Error('closed by the server')); return; }
          if (opcode !== 1) continue;
          const t = payload[0];
          if (t === 48) sock.write(FRAME_CONNECT); // '0' open -> connect namespace
          else if (t === 50) sock.write(FRAME_PONG); // '2' ping -> '3' pong
          else if (t === 52 && payload[1] === 48 && !done) { done = true; resolve(this); } // '40{sid}'
          else if (t === 49) fail(new Error('closed by the server')); // '1' close
        }
      });
    });
  }

  close() { if (this.sock) this.sock.destroy(); }
}

// ------------------------------------------------------------------ Socket.IO over long-polling

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

// One HTTP request; keepAlive false: on a new connection, closed after the response.
function request(base, method, path, body, keepAlive = true) {
  return new Promise((resolve, reject) => {
    const u = new URL(base + path);
    const headers = body !== undefined ? { 'Content-Type': 'text/plain;charset=UTF-8',
      'Content-Length': Buffer.byteLength(body) } : {};
    if (!keepAlive) headers.Connection = 'close';
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method,
      agent: keepAlive ? agent : false, headers,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
        else resolve(Buffer.concat(chunks).toString());
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

class PollClient {
  constructor(base, keepAlive = true) {
    this.base = base;
    this.url = base;
    this.keepAlive = keepAlive;
    this.requests = 0; // HTTP requests sent
    this.nextId = 1;
    this.acks = new Map();
    this.closed = false;
    this.outbox = [];
    this.posting = false;
  }

  async connect() {
    const open = await this.request('GET', '/socket.io/?EIO=4&transport=polling');
    this.sid = JSON.parse(open.slice(1)).sid;
    this.path = `/socket.io/?EIO=4&transport=polling&sid=${this.sid}`;
    await this.request('POST', this.path, '40');
    let connected = false;
    this.onConnected = null;
    const p = new Promise((resolve) => { this.onConnected = resolve; });
    this.pollLoop();
    await p;
    connected = true;
    return connected ? this : null;
  }

  async pollLoop() {
    while (!this.closed) {
      let body;
      try {
        body = await this.request('GET', this.path);
      } catch (e) {
        this.closed = true;
        break;
      }
      for (const pkt of body.split('\x1e')) this.onPacket(pkt);
    }
  }

  onPacket(s) {
    const t = s.charCodeAt(0);
    if (t === 50) { this.send('3'); return; }
    if (t === 49) { this.closed = true; return; }
    if (t !== 52) return;
    if (s.charCodeAt(1) === 48) { if (this.onConnected) this.onConnected(); return; }
    if (s.charCodeAt(1) === 51) {
      const b = s.indexOf('[');
      const id = Number(s.slice(2, b));
      const cb = this.acks.get(id);
      if (cb) { this.acks.delete(id); cb(s); }
    }
  }

  send(pkt) {
    this.outbox.push(pkt);
    if (!this.posting) this.flush();
  }

  async flush() {
    this.posting = true;
    while (this.outbox.length && !this.closed) {
      const body = this.outbox.join('\x1e');
      this.outbox = [];
      try {
        await this.request('POST', this.path, body);
      } catch (e) {
        this.closed = true;
      }
    }
    this.posting = false;
  }

  emitAck(json, cb) {
    const id = this.nextId++;
    this.acks.set(id, cb);
    this.send(`42${id}${json}`);
  }

  request(method, path, body) {
    this.requests++;
    return request(this.base, method, path, body, this.keepAlive);
  }

  close() { this.closed = true; }
}

// ------------------------------------------------------------------ helpers

async function connectAll(n, make, concurrency) {
  const clients = [];
  let errors = 0;
  let next = 0;
  async function lane() {
    while (next < n) {
      const i = next++;
      try {
        clients.push(await make(i).connect());
      } catch (e) {
        errors++;
      }
    }
  }
  const lanes = [];
  for (let i = 0; i < Math.min(concurrency, n); i++) lanes.push(lane());
  await Promise.all(lanes);
  return { clients, errors };
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function quantile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function cpuMs() { const u = process.cpuUsage(); return (u.user + u.system) / 1000; }

// About `bytes` of JSON (the data, as JSON.stringify writes it): chat-like records with repeated
// keys, their values drawn from a fixed-seed generator (one seed per variant), so every run sends
// the same text.
const PAYLOAD_VARIANTS = 16;

function makePayload(bytes, variant = 0) {
  let seed = 12345 + 7919 * variant;
  const rnd = (n) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 16) % n; };
  const words = ['the', 'server', 'message', 'room', 'socket', 'event', 'client', 'hello',
    'update', 'status', 'order', 'price', 'queue', 'ready', 'sent', 'a', 'of', 'to', 'and', 'new'];
  const items = [];
  let len = 2; // []
  for (let i = 0; ; i++) {
    const text = Array.from({ length: 4 + rnd(8) }, () => words[rnd(words.length)]).join(' ');
    const item = {
      id: 100000 + i * 7 + rnd(7), user: `user${rnd(40)}`, room: `room-${rnd(6)}`,
      ts: 1700000000000 + i * 1000 + rnd(1000), text, read: rnd(2) === 1,
    };
    const n = JSON.stringify(item).length + (items.length ? 1 : 0);
    if (items.length && len + n > bytes) break;
    items.push(item);
    len += n;
  }
  return items;
}

// [read, written] bytes summed over the WebSocket clients (zeros for long-polling clients)
function wireTotals(clients) {
  const t = [0, 0];
  for (const c of clients) {
    if (!c.wire) continue;
    const [r, w] = c.wire();
    t[0] += r; t[1] += w;
  }
  return t;
}

// ------------------------------------------------------------------ scenarios (one process)

// Closed loop: every client keeps `window` acks outstanding; counts acks in the measuring window.
async function runEcho(o, make, send) {
  const { clients, errors } = await connectAll(o.clients, make, o.concurrency);
  const lat = [];
  let count = 0;
  let measuring = false;
  let running = true;
  const stopAt = () => running;
  for (const c of clients) {
    const fire = () => {
      if (!stopAt() || c.closed) return;
      const t0 = now();
      send(c, () => {
        if (measuring) { count++; if (lat.length < 200000) lat.push(now() - t0); }
        fire();
      });
    };
    for (let w = 0; w < o.window; w++) fire();
  }
  await sleep(o.warmup * 1000);
  measuring = true;
  if (o.procs <= 1) out({ phase: 'start' });
  const t0 = now();
  const c0 = cpuMs();
  const w0 = wireTotals(clients);
  await sleep(o.duration * 1000);
  measuring = false;
  if (o.procs <= 1) out({ phase: 'end' });
  const elapsed = (now() - t0) / 1000;
  const cpu = cpuMs() - c0;
  const w1 = wireTotals(clients);
  running = false;
  await sleep(50);
  for (const c of clients) c.close();
  const deflated = clients.filter((c) => c.agreed && c.agreed.startsWith('permessage-deflate'));
  const urls = receiverUrls(o);
  return {
    connected: clients.length, errors, count, elapsed, lat, loadgen_cpu_ms: cpu,
    wire_in: w1[0] - w0[0], wire_out: w1[1] - w0[1], deflate_clients: deflated.length,
    extensions: clients.length ? clients[0].agreed : null,
    perUrl: urls.map((u) => clients.filter((c) => c.url === u).length),
    requests: clients.reduce((n, c) => n + (c.requests || 0), 0),
  };
}

// The echo events: their JSON array text, the length of the data's JSON and of the ack
// (43<id>[data]) less the id's digits. One per payload variant, or one for --payload.
function echoMessages(o) {
  const datas = o.payload_bytes > 0
    ? Array.from({ length: PAYLOAD_VARIANTS }, (_, v) => makePayload(o.payload_bytes, v))
    : [o.payload];
  return datas.map((data) => {
    const size = JSON.stringify(data).length;
    return { json: JSON.stringify(['echo', data]), size, ackLen: 4 + size };
  });
}

function echoWs(o) {
  const msgs = echoMessages(o);
  let bad = 0;
  const check = o.payload_bytes > 0;
  const urls = receiverUrls(o);
  return runEcho(o, (i) => new WsClient(urls[i % urls.length], null, o.deflate, o.upgrade), (c, cb) => {
    const id = c.nextId;
    const m = msgs[id % msgs.length];
    c.emitAck(m.json, (s) => {
      const want = m.ackLen + String(id).length;
      if (check && s.length !== want && bad++ === 0) {
        process.stderr.write(`echo: ack of ${s.length} chars, expected ${want}\n`);
      }
      cb();
    });
  }).then((r) => ({ ...r, bad_acks: bad }));
}

function echoBinary(o) {
  const buf = Buffer.alloc(o.size, 7);
  return runEcho(o, () => new WsClient(o.url), (c, cb) => c.emitBinaryAck('echo', buf, (parts) => {
    if (!Array.isArray(parts) || parts[0].length !== o.size) {
      process.stderr.write('binary echo: wrong reply\n');
    }
    cb();
  }));
}

function echoPoll(o) {
  const json = JSON.stringify(['echo', o.payload]);
  const urls = receiverUrls(o);
  return runEcho(o, (i) => new PollClient(urls[i % urls.length], Boolean(o.keepalive)),
    (c, cb) => c.emitAck(json, cb));
}

// The servers of the fanout receivers and of the echo / poll clients: --urls (comma-separated), or
// --url alone.
function receiverUrls(o) {
  return o.urls ? o.urls.split(',') : [o.url];
}

// Fanout receivers: report, per broadcast id, when this process's last client got it. Client i
// connects to receiverUrls(o)[i % n]; perUrl counts the connected clients per URL.
async function fanoutReceivers(o, onAll) {
  const seen = new Map(); // id -> {n, last}
  let clientsN = 0;
  const onEvent = (s) => {
    // 42["fan",{"i":<id>}]
    const k = s.indexOf('"i":');
    if (k < 0) return;
    const id = parseInt(s.slice(k + 4), 10);
    const t = now();
    let e = seen.get(id);
    if (!e) { e = { n: 0, last: 0 }; seen.set(id, e); }
    e.n++;
    e.last = t;
    if (e.n === clientsN) { onAll(id, t); seen.delete(id); }
  };
  const urls = receiverUrls(o);
  const { clients, errors } = await connectAll(o.clients,
    (i) => new WsClient(urls[i % urls.length], { event: onEvent }), o.concurrency);
  clientsN = clients.length;
  const perUrl = urls.map((u) => clients.filter((c) => c.url === u).length);
  return { clients, errors, seen, perUrl };
}

// ------------------------------------------------------------------ multi-process plumbing

function shard(o, i) {
  const per = Math.floor(o.clients / o.procs) + (i < o.clients % o.procs ? 1 : 0);
  return { ...o, clients: per };
}

function spawnWorkers(o, role) {
  const ws = [];
  for (let i = 0; i < o.procs; i++) {
    const child = fork(__filename, [], { env: { ...process.env, LOADGEN_ROLE: role } });
    child.send({ o: shard(o, i) });
    ws.push(child);
  }
  return ws;
}

function onceMsg(child, type) {
  return new Promise((resolve) => {
    const f = (m) => { if (m.type === type) { child.off('message', f); resolve(m); } };
    child.on('message', f);
  });
}

// Echo-type scenario split over processes (or in this one).
async function echoMain(o, fn) {
  if (o.procs <= 1) return fn(o);
  const ws = spawnWorkers(o, o.scenario);
  const rs = await Promise.all(ws.map((w) => onceMsg(w, 'result')));
  ws.forEach((w) => w.kill());
  const r = {
    connected: 0, errors: 0, count: 0, elapsed: 0, lat: [], loadgen_cpu_ms: 0, wire_in: 0,
    wire_out: 0, deflate_clients: 0, bad_acks: 0, extensions: rs.length ? rs[0].r.extensions : null,
    perUrl: receiverUrls(o).map(() => 0), requests: 0,
  };
  for (const { r: x } of rs) {
    r.connected += x.connected; r.errors += x.errors; r.count += x.count;
    r.elapsed = Math.max(r.elapsed, x.elapsed); r.lat.push(...x.lat); r.loadgen_cpu_ms += x.loadgen_cpu_ms;
    r.wire_in += x.wire_in; r.wire_out += x.wire_out; r.deflate_clients += x.deflate_clients;
    r.bad_acks += x.bad_acks || 0;
    x.perUrl.forEach((k, j) => { r.perUrl[j] += k; });
    r.requests += x.requests;
  }
  return r;
}

function summarizeEcho(o, r) {
  r.lat.sort((a, b) => a - b);
  const out = {
    scenario: o.scenario, clients: o.clients, connected: r.connected, errors: r.errors,
    count: r.count, elapsed_s: r.elapsed, rate: r.count / r.elapsed,
    p50_ms: quantile(r.lat, 0.5), p99_ms: quantile(r.lat, 0.99),
    loadgen_cpu_pct: (100 * r.loadgen_cpu_ms) / (r.elapsed * 1000),
  };
  if (o.scenario === 'binary') out.mb_s = (r.count * o.size) / r.elapsed / 1e6;
  if (o.scenario !== 'poll') { out.wire_in_bytes = r.wire_in; out.wire_out_bytes = r.wire_out; }
  if (o.scenario === 'echo' && o.payload_bytes > 0) {
    const sizes = echoMessages(o).map((m) => m.size);
    out.payload_json_bytes = [Math.min(...sizes), Math.max(...sizes)];
    out.bad_acks = r.bad_acks;
  }
  if (o.deflate) { out.deflate_clients = r.deflate_clients; out.extensions = r.extensions; }
  if (o.urls) out.connected_per_url = r.perUrl; // only with --urls: the single-node output is unchanged
  if (o.scenario === 'poll') out.http_requests = r.requests; // the whole run's, connecting included
  return out;
}

async function fanoutMain(o) {
  let local = null;
  let ws = [];
  const waiting = new Map(); // id -> {left, last}
  const arrived = (id, t) => {
    const w = waiting.get(id);
    if (!w) return;
    w.left--;
    w.last = Math.max(w.last, t);
    if (w.left === 0) w.resolve(w.last);
  };
  let connected = 0;
  let errors = 0;
  let perUrl = receiverUrls(o).map(() => 0);
  if (o.procs <= 1) {
    local = await fanoutReceivers(o, arrived);
    connected = local.clients.length;
    errors = local.errors;
    perUrl = local.perUrl;
  } else {
    ws = spawnWorkers(o, 'fanout');
    for (const w of ws) w.on('message', (m) => { if (m.type === 'all') arrived(m.id, m.t); });
    const rs = await Promise.all(ws.map((w) => onceMsg(w, 'ready')));
    for (const m of rs) {
      connected += m.connected; errors += m.errors;
      m.perUrl.forEach((k, j) => { perUrl[j] += k; });
    }
  }
  const trigger = await new WsClient(o.url).connect();
  const parts = o.procs <= 1 ? 1 : o.procs;
  const lat = [];
  out({ phase: 'start' });
  const c0 = cpuMs();
  const t00 = now();
  let timeouts = 0;
  for (let i = 0; i < o.rounds + 1; i++) { // round 0 is a warm-up, not counted
    const p = new Promise((resolve) => waiting.set(i, { left: parts, last: 0, resolve }));
    const t0 = now();
    trigger.emit(JSON.stringify(['bcast', { i }]));
    const t = await Promise.race([p, sleep(o.timeout * 1000).then(() => null)]);
    waiting.delete(i);
    if (t === null) { timeouts++; break; }
    if (i > 0) lat.push(t - t0);
    await sleep(o.gap * 1000);
  }
  out({ phase: 'end' });
  const elapsed = (now() - t00) / 1000;
  const cpu = cpuMs() - c0;
  trigger.close();
  if (local) local.clients.forEach((c) => c.close());
  ws.forEach((w) => w.kill());
  const sorted = [...lat].sort((a, b) => a - b);
  const r = {
    scenario: 'fanout', clients: o.clients, connected, errors, rounds: lat.length, timeouts,
    count: lat.length * connected, p50_ms: quantile(sorted, 0.5), p99_ms: quantile(sorted, 0.99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : null, elapsed_s: elapsed,
    loadgen_cpu_pct: o.procs <= 1 ? (100 * cpu) / (elapsed * 1000) : null,
  };
  if (o.urls) r.connected_per_url = perUrl; // only with --urls: the single-node output is unchanged
  return r;
}

async function stormMain(o) {
  out({ phase: 'start' });
  const t0 = now();
  let clients = [];
  let errors = 0;
  let ws = [];
  if (o.procs <= 1) {
    const r = await connectAll(o.clients, () => new StormClient(o.url), o.concurrency);
    clients = r.clients;
    errors = r.errors;
  } else {
    ws = spawnWorkers(o, 'storm');
    const rs = await Promise.all(ws.map((w) => onceMsg(w, 'ready')));
    for (const m of rs) { clients.length += m.connected; errors += m.errors; }
  }
  const elapsed = (now() - t0) / 1000;
  const connected = clients.length;
  out({ phase: 'end' });
  out({ phase: 'connected', connected, errors, elapsed_s: elapsed });
  await sleep(o.hold * 1000);
  if (o.procs <= 1) clients.forEach((c) => c.close());
  ws.forEach((w) => w.kill());
  return { scenario: 'storm', clients: o.clients, connected, errors, elapsed_s: elapsed, rate: connected / elapsed };
}

// ------------------------------------------------------------------ entry points

function out(obj) { process.stdout.write(`${JSON.stringify(obj)}\n`); }

const ECHO = { echo: echoWs, binary: echoBinary, poll: echoPoll };

async function worker(role) {
  const { o } = await new Promise((resolve) => process.once('message', resolve));
  if (ECHO[role]) {
    process.send({ type: 'result', r: await ECHO[role](o) });
  } else if (role === 'fanout') {
    const r = await fanoutReceivers(o, (id, t) => process.send({ type: 'all', id, t }));
    process.send({ type: 'ready', connected: r.clients.length, errors: r.errors, perUrl: r.perUrl });
  } else if (role === 'storm') {
    const r = await connectAll(o.clients, () => new StormClient(o.url), o.concurrency);
    process.send({ type: 'ready', connected: r.clients.length, errors: r.errors });
  }
}

async function main() {
  const o = parseArgs(process.argv);
  const hardStop = setTimeout(() => { out({ final: true, error: 'timeout' }); process.exit(2); },
    (o.timeout + o.duration + o.warmup + o.hold + 30) * 1000);
  hardStop.unref();
  let r;
  if (ECHO[o.scenario]) r = summarizeEcho(o, await echoMain(o, ECHO[o.scenario]));
  else if (o.scenario === 'fanout') r = await fanoutMain(o);
  else if (o.scenario === 'storm') r = await stormMain(o);
  else throw new Error(`unknown scenario ${o.scenario}`);
  out({ final: true, ...r });
  process.exit(0);
}

module.exports = { makePayload, echoMessages, PAYLOAD_VARIANTS };

if (require.main !== module) {
  // required for its payloads (e.g. to measure their compressed size): run nothing
} else if (process.env.LOADGEN_ROLE) {
  worker(process.env.LOADGEN_ROLE).catch((e) => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
} else {
  main().catch((e) => { out({ final: true, error: String(e) }); process.exit(1); });
}
