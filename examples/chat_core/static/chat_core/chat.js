// The chat page. Needs /socket.io/socket.io.js (served by sio_wsgi from node_modules).
// URL options: ?transport=polling (never upgrade) or ?transport=websocket (WebSocket only).
(function () {
  "use strict";

  const $ = (sel, root) => (root || document).querySelector(sel);
  const DM = "@dm";
  const MAX_FILE = 512 * 1024;

  if (typeof io === "undefined") {
    $("#client-missing").hidden = false;
    $("#status").textContent = "no client";
    return;
  }

  const params = new URLSearchParams(location.search);
  const options = {};
  if (params.get("transport") === "polling") options.transports = ["polling"];
  if (params.get("transport") === "websocket") options.transports = ["websocket"];
  const socket = io(options);
  window.chatSocket = socket; // handy in the devtools console

  const state = { me: null, active: "lobby", joined: new Set(), privateTo: null, typingTimer: null,
                  lastTyping: 0 };

  // ------------------------------------------------------------------ helpers
  function newId() {
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function time(ts) {
    return new Date(ts || Date.now()).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function log(room) {
    let box = document.querySelector(`.log[data-room="${CSS.escape(room)}"]`);
    if (!box) {
      box = el("div", "log");
      box.dataset.room = room;
      box.hidden = room !== state.active;
      $("#logs").appendChild(box);
    }
    return box;
  }

  function addLine(room, node) {
    const box = log(room);
    box.appendChild(node);
    box.scrollTop = box.scrollHeight;
    if (room !== state.active) {
      const badge = document.querySelector(`#rooms li[data-room="${CSS.escape(room)}"] .unread`);
      if (badge) badge.textContent = String((parseInt(badge.textContent, 10) || 0) + 1);
    }
  }

  function message(room, msg, mine) {
    const line = el("div", mine ? "msg mine" : "msg");
    line.dataset.id = msg.id;
    const head = el("div", "meta");
    head.appendChild(el("span", "from", msg.to && mine ? `me → ${msg.to}` : msg.from));
    head.appendChild(el("span", "time", time(msg.ts)));
    if (mine) head.appendChild(el("span", "receipt", "sending…"));
    line.appendChild(head);
    if (msg.text !== undefined) line.appendChild(el("div", "text", msg.text));
    addLine(room, line);
    return line;
  }

  function notice(room, text, cls) {
    addLine(room, el("div", cls || "notice", text));
  }

  function receipt(id, status) {
    const node = document.querySelector(`.msg[data-id="${CSS.escape(id)}"] .receipt`);
    if (!node) return;
    const rank = { "sending…": 0, failed: 0, sent: 1, delivered: 2 };
    if ((rank[status] || 0) >= (rank[node.textContent] || 0)) {
      node.textContent = status;
      node.dataset.status = status;
    }
  }

  function attachment(line, msg) {
    const blob = new Blob([msg.data], { type: msg.type });
    const url = URL.createObjectURL(blob);
    if (msg.type.startsWith("image/")) {
      const img = el("img", "shared");
      img.alt = msg.name;
      img.src = url;
      line.appendChild(img);
    }
    const link = el("a", "download", `${msg.name} (${Math.ceil(blob.size / 1024)} kB)`);
    link.href = url;
    link.download = msg.name;
    line.appendChild(link);
  }

  function setStatus(text, kind) {
    const node = $("#status");
    node.textContent = text;
    node.dataset.state = kind;
  }

  function showTransport() {
    const name = socket.io.engine ? socket.io.engine.transport.name : "?";
    $("#transport").textContent = name;
    $("#transport").dataset.transport = name;
  }

  function emitWithAck(event, payload, id) {
    socket.timeout(20000).emit(event, payload, (err, res) => {
      if (err) return receipt(id, "failed");
      if (!res.ok) {
        receipt(id, "failed");
        return notice(state.active, res.error, "notice error");
      }
      receipt(id, "sent");
    });
  }

  // ------------------------------------------------------------------ rooms
  function activate(room) {
    state.active = room;
    document.querySelectorAll(".log").forEach((box) => (box.hidden = box.dataset.room !== room));
    log(room).hidden = false;
    document.querySelectorAll("#rooms li").forEach((li) => {
      li.classList.toggle("active", li.dataset.room === room);
      if (li.dataset.room === room) $(".unread", li).textContent = "";
    });
    $("#room-title").textContent = room === DM ? "Direct messages" : `#${room}`;
    $("#leave").hidden = room === "lobby" || room === DM;
    $("#typing").textContent = "";
    if (room !== DM) renderMembers(room, (state.members || {})[room] || []);
  }

  function renderRooms(rooms) {
    const list = $("#rooms");
    list.textContent = "";
    rooms.concat([{ name: DM }]).forEach((room) => {
      const li = el("li");
      li.dataset.room = room.name;
      li.classList.toggle("joined", room.name === DM || state.joined.has(room.name));
      li.classList.toggle("active", room.name === state.active);
      li.appendChild(el("span", "name", room.name === DM ? "✉ direct" : `#${room.name}`));
      if (room.count !== undefined) li.appendChild(el("span", "count", String(room.count)));
      li.appendChild(el("span", "unread", ""));
      li.addEventListener("click", () => openRoom(room.name));
      list.appendChild(li);
    });
  }

  function openRoom(room) {
    if (room === DM || state.joined.has(room)) return activate(room);
    socket.timeout(10000).emit("join", { room }, (err, res) => {
      if (err || !res.ok) return notice(state.active, err ? "join timed out" : res.error, "notice error");
      state.joined.add(res.room);
      activate(res.room);
    });
  }

  function renderMembers(room, members) {
    state.members = state.members || {};
    state.members[room] = members;
    if (room !== state.active) return;
    const list = $("#members");
    list.textContent = "";
    members.forEach((name) => {
      const li = el("li", name === state.me ? "me" : "", name);
      li.dataset.name = name;
      li.title = name === state.me ? "you" : `send a private message to ${name}`;
      if (name !== state.me) li.addEventListener("click", () => setPrivate(name));
      list.appendChild(li);
    });
  }

  function setPrivate(name) {
    state.privateTo = name;
    $("#private-to").hidden = !name;
    $("#private-name").textContent = name || "";
    $("#text").focus();
  }

  // ------------------------------------------------------------------ socket events
  socket.on("connect", () => {
    setStatus("connected", "connected");
    $("#error").hidden = true;
    showTransport();
    socket.io.engine.on("upgrade", showTransport);
  });

  socket.on("disconnect", (reason) => setStatus(`disconnected (${reason}), reconnecting…`, "disconnected"));

  socket.on("connect_error", (err) => {
    if (socket.active) return setStatus(`cannot reach the server (${err.message}), retrying…`, "retrying");
    setStatus("refused", "refused");
    $("#error-text").textContent = err.message;
    $("#error").hidden = false;
  });

  socket.on("welcome", (info) => {
    state.me = info.name;
    $("#me").textContent = info.name;
    state.joined = new Set(["lobby"]);
    renderRooms(info.rooms);
    activate(state.active === DM ? DM : "lobby");
  });

  socket.on("rooms", renderRooms);
  socket.on("members", (info) => renderMembers(info.room, info.members));

  socket.on("message", (msg, ack) => {
    message(msg.room, msg, false);
    if (ack) ack();
  });

  socket.on("private", (msg, ack) => {
    const line = message(DM, msg, false);
    line.classList.add("private");
    if (state.active !== DM) notice(state.active, `✉ private message from ${msg.from} (see “direct”)`);
    if (ack) ack();
  });

  socket.on("file", (msg, ack) => {
    attachment(message(msg.room, msg, false), msg);
    if (ack) ack();
  });

  socket.on("delivered", (info) => receipt(info.id, "delivered"));
  socket.on("notice", (info) => notice(info.room, info.text));

  socket.on("announcement", (info) => {
    const bar = $("#announcement");
    bar.textContent = `Announcement: ${info.text}`;
    bar.hidden = false;
    notice(state.active, `announcement: ${info.text}`, "notice announcement");
  });

  socket.on("typing", (info) => {
    if (info.room !== state.active) return;
    $("#typing").textContent = `${info.name} is typing…`;
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(() => ($("#typing").textContent = ""), 2500);
  });

  // ------------------------------------------------------------------ the form
  $("#composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = $("#text").value.trim();
    if (!text || !socket.connected) return;
    $("#text").value = "";
    const id = newId();
    if (state.privateTo) {
      const msg = { id, to: state.privateTo, text };
      message(DM, { ...msg, from: state.me }, true).classList.add("private");
      if (state.active !== DM) activate(DM);
      return emitWithAck("private", msg, id);
    }
    if (state.active === DM) return notice(DM, "pick someone in the member list first", "notice error");
    const msg = { id, room: state.active, text };
    message(state.active, { ...msg, from: state.me }, true);
    emitWithAck("message", msg, id);
  });

  $("#text").addEventListener("input", () => {
    const now = Date.now();
    if (state.active === DM || !socket.connected || now - state.lastTyping < 1000) return;
    state.lastTyping = now;
    socket.volatile.emit("typing", { room: state.active }); // fine to lose: the next keystroke resends
  });

  $("#file").addEventListener("change", async (ev) => {
    const file = ev.target.files[0];
    ev.target.value = "";
    if (!file || state.active === DM) return;
    if (file.size > MAX_FILE) return notice(state.active, `${file.name} is over 512 kB`, "notice error");
    const data = await file.arrayBuffer();
    const id = newId();
    const msg = { id, room: state.active, name: file.name, type: file.type || "application/octet-stream" };
    attachment(message(state.active, { ...msg, from: state.me }, true), { ...msg, data });
    emitWithAck("file", { ...msg, data }, id);
  });

  $("#new-room").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const name = $("#room-name").value.trim();
    $("#room-name").value = "";
    if (name) openRoom(name);
  });

  $("#leave").addEventListener("click", () => {
    const room = state.active;
    socket.emit("leave", { room }, (res) => {
      if (!res.ok) return notice(room, res.error, "notice error");
      state.joined.delete(room);
      activate("lobby");
    });
  });

  $("#private-clear").addEventListener("click", () => setPrivate(null));
})();
