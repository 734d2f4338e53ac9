#!/usr/bin/env node
// A trivial Engine.IO/Socket.IO responder over raw WebSocket (the `ws` package), with canned
// replies and no parsing beyond the packet type: used only to measure the load generator's own
// ceiling. Handles namespace "/" connect, `echo` acks (text and one binary attachment) and
// `bcast` (one pre-built frame written to every socket).
// Usage: node trivial.js <port>
'use strict';

const http = require('http');
const WebSocket = require('ws');

const port = Number(process.argv[2] || 5000);
const server = http.createServer((req, res) => { res.writeHead(200); res.end('ok'); });
const wss = new WebSocket.Server({ server, perMessageDeflate: false });
let n = 0;
wss.on('connection', (ws) => {
  n++;
  ws.send(`0{"sid":"s${n}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":10000000}`);
  let binId = null;
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      ws.send(`461-${binId}[{"_placeholder":true,"num":0}]`);
      ws.send(data, { binary: true });
      return;
    }
    const s = data.toString();
    if (s === '40') { ws.send(`40{"sid":"n${n}"}`); return; }
    if (s.startsWith('451-')) { binId = s.slice(4, s.indexOf('[')); return; }
    if (s.startsWith('42[')) { // bcast
      const frame = `42["fan",${s.slice(s.indexOf(',') + 1, -1)}]`;
      for (const c of wss.clients) c.send(frame);
      return;
    }
    if (s.startsWith('42')) { // echo with ack: 42<id>["echo",x] -> 43<id>[x]
      const b = s.indexOf('[');
      ws.send(`43${s.slice(2, b)}[${s.slice(s.indexOf(',', b) + 1)}`);
    }
  });
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
