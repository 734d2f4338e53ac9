#!/usr/bin/env node
// The benchmark app on the Node socket.io 4.8 server (the reference point).
// Usage: node server.js <port>
'use strict';

const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 5000);
const httpServer = http.createServer((req, res) => { res.writeHead(200); res.end('ok'); });
const io = new Server(httpServer, {
  transports: ['polling', 'websocket'],
  pingInterval: 25000,
  pingTimeout: 20000,
  maxHttpBufferSize: 1e7,
  perMessageDeflate: { threshold: 1024 }, // ws's defaults otherwise; only clients offering it
  httpCompression: false,
  cors: { origin: '*' },
  // BENCH_RECOVERY=1: the node+csr server of bench/run.py
  ...(process.env.BENCH_RECOVERY === '1' ? { connectionStateRecovery: {} } : {}),
});
io.on('connection', (socket) => {
  socket.on('echo', (data, ack) => { if (typeof ack === 'function') ack(data); });
  socket.on('bcast', (data) => { io.emit('fan', data); });
});
httpServer.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
