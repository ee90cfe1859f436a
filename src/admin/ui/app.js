// postern's captured-mail interface: the list of captured messages per
// mailbox, live from /events, one message shown safely, release and delete.
// Everything from mail goes into the page as text (textContent), never as
// markup; HTML bodies only inside a sandboxed frame.
"use strict";

const PAGE = 50;
const state = { mailbox: "", offset: 0, total: 0, search: null, current: null, images: false };
const $ = (id) => document.getElementById(id);

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function say(text) {
  const s = $("status");
  s.textContent = text;
  s.classList.add("shown");
  clearTimeout(say.timer);
  say.timer = setTimeout(() => s.classList.remove("shown"), 2500);
}

// Requests go to the origin itself: a page opened as http://user:pass@host/
// has the credentials in its base URL, which fetch and frames refuse.
const at = (path) => location.origin + path;

async function api(path, options) {
  const response = await fetch(at(path), Object.assign({ credentials: "same-origin" }, options));
  if (!response.ok) {
    let why = response.status + " " + response.statusText;
    try { why = (await response.json()).error || why; } catch (_) { /* not JSON */ }
    throw new Error(why);
  }
  return response;
}

function size(n) {
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " kB";
  return (n / 1048576).toFixed(1) + " MB";
}

function age(t) {
  const s = Math.max(0, Math.floor(Date.now() / 1000) - t);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

async function loadMailboxes() {
  const boxes = await (await api("/mailboxes")).json();
  const list = $("mailbox-list");
  list.replaceChildren();
  const all = boxes.reduce((n, b) => n + b.messages, 0);
  const item = (name, label, count) => {
    const a = el("a", null, { href: "#" + encodeURIComponent(name) });
    a.append(el("span", label), el("span", count, { class: "badge" }));
    if (name === state.mailbox) a.classList.add("current");
    a.addEventListener("click", (e) => { e.preventDefault(); openMailbox(name); });
    const li = el("li");
    li.append(a);
    list.append(li);
  };
  item("", "All mail", all);
  for (const b of boxes) item(b.name, b.name, b.messages);
}

function query() {
  const p = new URLSearchParams({ captured: "yes", order: "newest", summary: "yes", limit: PAGE, offset: state.offset });
  if (state.mailbox) p.set("mailbox", state.mailbox);
  if (state.search) p.set(state.search.field, state.search.q);
  return p;
}

async function loadList() {
  const response = await api("/queue?" + query());
  const items = await response.json();
  state.total = Number(response.headers.get("x-total-count") || items.length);
  const body = $("messages").tBodies[0];
  body.replaceChildren();
  for (const m of items) {
    const tr = el("tr", null, { "data-id": m.queue_id });
    if (m.queue_name !== "hold") tr.classList.add("released");
    const subject = el("td", m.subject || "(no subject)");
    if (m.attachments) subject.append(el("span", "📎 " + m.attachments, { class: "badge" }));
    if (m.queue_name !== "hold") subject.append(el("span", m.queue_name, { class: "badge" }));
    tr.append(
      el("td", (m.from || []).join(", ") || m.sender || "<>"),
      el("td", (m.to || []).join(", ") || m.recipients.map((r) => r.address).join(", ")),
      subject,
      el("td", size(m.message_size), { class: "num" }),
      el("td", age(m.arrival_time), { class: "num", title: new Date(m.arrival_time * 1000).toLocaleString() }),
    );
    tr.addEventListener("click", () => openMessage(m.queue_id));
    body.append(tr);
  }
  $("empty").hidden = body.rows.length > 0;
  $("count").textContent = state.total + (state.total === 1 ? " message" : " messages");
  $("prev").disabled = state.offset === 0;
  $("next").disabled = state.offset + PAGE >= state.total;
  $("page").textContent = state.total ? (state.offset + 1) + "–" + Math.min(state.offset + PAGE, state.total) : "";
  $("mailbox-title").textContent = state.mailbox || "All mail";
  $("delete-all").hidden = !state.mailbox;
}

function refresh() {
  clearTimeout(refresh.timer);
  refresh.timer = setTimeout(() => {
    loadMailboxes().catch((e) => say(e.message));
    loadList().catch((e) => say(e.message));
  }, 150);
}

function openMailbox(name) {
  state.mailbox = name;
  state.offset = 0;
  showList();
  refresh();
}

function showList() {
  state.current = null;
  $("message-pane").hidden = true;
  $("list-pane").hidden = false;
}

function tab(name) {
  for (const b of document.querySelectorAll(".tabs button")) b.classList.toggle("current", b.dataset.tab === name);
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("current", t.id === "tab-" + name);
  if (name === "raw" && state.current && !$("tab-raw").dataset.loaded) {
    api("/queue/" + state.current + "/raw").then((r) => r.text()).then((t) => {
      $("tab-raw").textContent = t;
      $("tab-raw").dataset.loaded = "1";
    }).catch((e) => say(e.message));
  }
}

function showHtml() {
  const frame = $("html-frame");
  frame.src = at("/queue/" + state.current + "/html" + (state.images ? "?images=yes" : ""));
}

async function openMessage(id) {
  const m = await (await api("/queue/" + id + "/message")).json();
  state.current = id;
  state.images = false;
  $("list-pane").hidden = true;
  $("message-pane").hidden = false;
  $("subject").textContent = m.subject || "(no subject)";
  const meta = $("meta");
  meta.replaceChildren();
  const row = (k, v) => { if (v) meta.append(el("dt", k), el("dd", v)); };
  row("From", (m.from || []).join(", "));
  row("To", (m.to || []).join(", "));
  row("Cc", (m.cc || []).join(", "));
  row("Date", m.date);
  row("Envelope", "<" + m.sender + "> → " + m.recipients.join(", "));
  row("Mailbox", m.mailbox);
  row("Queue", m.queue + " · " + id + " · " + size(m.size));
  $("tab-text").textContent = m.text || "(no text part)";
  const headers = $("tab-headers").tBodies[0];
  headers.replaceChildren();
  for (const [name, value] of m.headers) {
    const tr = el("tr");
    tr.append(el("th", name), el("td", value));
    headers.append(tr);
  }
  $("tab-raw").textContent = "";
  delete $("tab-raw").dataset.loaded;
  const list = $("tab-attachments");
  list.replaceChildren();
  for (const a of m.attachments) {
    const li = el("li");
    const link = el("a", a.filename || "attachment " + (a.n + 1), { href: at("/queue/" + id + "/attachments/" + a.n), download: "" });
    li.append(link, el("span", a.content_type + " · " + size(a.size), { class: "badge" }));
    list.append(li);
  }
  if (m.attachment_count > m.attachments.length) list.append(el("li", "… and " + (m.attachment_count - m.attachments.length) + " more"));
  $("attachment-count").textContent = m.attachment_count ? "(" + m.attachment_count + ")" : "";
  $("release").disabled = m.queue !== "hold";
  document.querySelector('[data-tab="html"]').hidden = !m.html;
  if (m.html) {
    showHtml();
    tab("html");
  } else {
    $("html-frame").removeAttribute("src");
    tab("text");
  }
}

async function release(to) {
  const options = { method: "POST" };
  if (to) {
    options.body = JSON.stringify({ to: [to] });
    options.headers = { "content-type": "application/json" };
  }
  await api("/queue/" + state.current + "/release", options);
  say(to ? "Sent a copy to " + to : "Released");
  if (!to) showList();
  refresh();
}

function listen() {
  const events = new EventSource(at("/events"));
  events.onopen = () => $("live").classList.add("on");
  events.onerror = () => $("live").classList.remove("on");
  for (const kind of ["arrival", "release", "move", "removal", "lagged"]) events.addEventListener(kind, refresh);
}

function wire() {
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("q").value.trim();
    state.search = q ? { q, field: $("field").value } : null;
    state.offset = 0;
    showList();
    refresh();
  });
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); refresh(); });
  $("next").addEventListener("click", () => { state.offset += PAGE; refresh(); });
  $("back").addEventListener("click", () => { showList(); refresh(); });
  $("release").addEventListener("click", () => release(null).catch((e) => say(e.message)));
  $("release-to").addEventListener("submit", (e) => {
    e.preventDefault();
    release($("release-address").value.trim()).catch((err) => say(err.message));
  });
  $("delete").addEventListener("click", () => {
    api("/queue/" + state.current, { method: "DELETE" })
      .then(() => { say("Deleted"); showList(); refresh(); })
      .catch((e) => say(e.message));
  });
  $("delete-all").addEventListener("click", () => {
    if (!confirm("Delete every message in " + state.mailbox + "?")) return;
    api("/mailboxes/" + encodeURIComponent(state.mailbox), { method: "DELETE" })
      .then((r) => r.json()).then((r) => { say("Deleted " + r.deleted); openMailbox(""); })
      .catch((e) => say(e.message));
  });
  $("images").addEventListener("click", () => { state.images = true; showHtml(); });
  for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => tab(b.dataset.tab));
}

wire();
listen();
openMailbox(decodeURIComponent(location.hash.slice(1)));
