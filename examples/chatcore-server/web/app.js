// chatcore browser client: a complete client of the chatcore.v1.json protocol
// (docs/protocol.md) in plain JavaScript, no framework, no build step. It is also
// meant as an example to read when writing a client. The sections:
//
//   1. Helpers                 5. Sending: the outbox (idempotent retries)
//   2. Session (dev login)     6. Typing, receipts, presence
//   3. Connection              7. Rendering
//   4. Chats and their logs    8. User actions, start-up
//
// Every piece of user content reaches the page through textContent (el() below),
// never through innerHTML.
'use strict';

// ---- 1. Helpers ------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

// el('li', {class: 'x', 'data-seq': 4}, 'text', childNode): builds an element.
// Strings become text nodes, so they are never parsed as HTML.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else node.setAttribute(name, String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// 64-bit integers (seq, times, request ids) travel as decimal strings and default
// fields are omitted. Per-chat seqs and millisecond times stay far below 2^53, so
// Number is exact for them.
const num = (value) => Number(value ?? 0);

const USER_ID = /^[A-Za-z0-9._@-]{1,64}$/;

// The id of the direct chat of two users: "d:" + min + ":" + max, compared
// bytewise. User ids are ASCII, where JavaScript's comparison is bytewise too.
const directChatId = (a, b) => (a < b ? `d:${a}:${b}` : `d:${b}:${a}`);

function peerOfDirect(chatId) {
  const [, a, b] = chatId.split(':');
  return a === session.userId ? b : a;
}

// A client message id per message. crypto.randomUUID() needs a secure context
// (https, or http on localhost); elsewhere build a v4 UUID from getRandomValues.
function newClientMsgId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const timeOf = (ms) =>
  ms ? new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';

// A failed request: `code` is the protocol's error code name
// ("ERROR_CODE_RATE_LIMITED"), or TIMEOUT / DISCONNECTED from this client.
class RequestError extends Error {
  constructor(code, message, retryAfterMs = 0) {
    super(message || code);
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

// ---- 2. Session (dev login) ------------------------------------------------------
//
// The reference server's --dev-login issues a token for any user name
// (POST /v1/login). A real deployment gets the token from its identity provider.
// The session lives in sessionStorage: one login per browser tab.

const SESSION_KEY = 'chatcore.session';
let session = null; // {userId, token, expiresAtMs}

async function login(user) {
  const res = await fetch('/v1/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user }),
  });
  if (!res.ok) {
    const why = { 400: 'not a valid user name', 404: 'this server has no dev login' };
    throw new Error(why[res.status] || `login failed (HTTP ${res.status})`);
  }
  const body = await res.json();
  session = { userId: body.userId, token: body.token, expiresAtMs: num(body.expiresAtMs) };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

// A token good for at least another minute (a new handshake needs a valid one).
async function freshToken() {
  if (session.stale || (session.expiresAtMs && session.expiresAtMs - Date.now() < 60_000)) {
    await login(session.userId);
  }
  return session.token;
}

// A connect ticket for the WebSocket URL (POST /v1/tickets, docs/protocol.md):
// proxies and load balancers log URLs, so the URL carries a 30-second,
// single-use ticket instead of the token (browsers cannot set an Authorization
// header on a WebSocket). The server that issues it must be the one we connect
// to: here, the page's own.
async function connectTicket(token) {
  const res = await fetch('/v1/tickets', {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}` },
  });
  if (res.status === 401) session.stale = true; // log in again next time
  if (!res.ok) throw new Error(`no connect ticket (HTTP ${res.status})`);
  return (await res.json()).ticket;
}

// ---- 3. Connection ---------------------------------------------------------------
//
// One WebSocket at /ws with the subprotocol chatcore.v1.json. Commands are sent
// with a requestId and matched to their reply (replies may come in any order);
// events arrive in between. After a drop: reconnect with exponential backoff and
// jitter, then resume (section 4).

const REQUEST_TIMEOUT_MS = 15_000;
const PING_TIMEOUT_MS = 10_000;
const HELLO_TIMEOUT_MS = 10_000; // from opening the socket to the hello event
const STABLE_MS = 10_000; // a connection up this long resets the backoff

const conn = {
  ws: null,
  state: 'disconnected', // 'connecting' (until hello) | 'connected' | 'disconnected'
  stopped: true, // logged out: stay disconnected
  nextRequestId: 1,
  pending: new Map(), // requestId -> {command, resolve, reject, timer}
  attempt: 0, // failed attempts since the last stable connection, for the backoff
  retryTimer: 0,
  retryAt: 0,
  helloTimer: 0,
  connectedAt: 0,
  heartbeatTimer: 0,
  heartbeatMs: 30_000,
  lastSentAt: 0,
};

async function connect() {
  clearTimeout(conn.retryTimer);
  if (conn.stopped || conn.ws) return;
  setConnState('connecting');
  let ticket;
  try {
    ticket = await connectTicket(await freshToken());
  } catch (err) {
    console.warn('chatcore: cannot get a connect ticket:', err.message);
    scheduleReconnect();
    return;
  }
  if (conn.stopped || conn.ws) return;
  const url = new URL('/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('ticket', ticket);
  const ws = new WebSocket(url, 'chatcore.v1.json');
  conn.ws = ws;
  conn.nextRequestId = 1; // request ids count per connection
  conn.helloTimer = setTimeout(dropConnection, HELLO_TIMEOUT_MS);
  ws.onmessage = (ev) => {
    if (conn.ws !== ws) return;
    let frame;
    try {
      frame = JSON.parse(ev.data);
    } catch {
      console.warn('chatcore: a server frame that is not JSON', ev.data);
      return;
    }
    if (frame.reply) onReply(frame.reply);
    else if (frame.event) onEvent(frame.event);
  };
  // An error is always followed by close; a refused handshake (401, 429, 503)
  // also shows up here, as 1006.
  ws.onclose = (ev) => {
    if (conn.ws === ws) onClosed(ev.code);
  };
}

function onClosed(code) {
  conn.ws = null;
  clearTimeout(conn.helloTimer);
  clearInterval(conn.heartbeatTimer);
  // A server that accepts and then drops us at once must not get a tight loop.
  if (conn.connectedAt && Date.now() - conn.connectedAt >= STABLE_MS) conn.attempt = 0;
  // Closed before hello: perhaps a refused token. The dev login signs with a key
  // of the server process, so a restarted server refuses our token: log in again.
  if (!conn.connectedAt && session) session.stale = true;
  conn.connectedAt = 0;
  for (const p of conn.pending.values()) {
    clearTimeout(p.timer);
    p.reject(new RequestError('DISCONNECTED', 'the connection was lost'));
  }
  conn.pending.clear();
  onDisconnected();
  if (conn.stopped) {
    setConnState('disconnected');
    return;
  }
  // Close codes (docs/protocol.md): 4001 token expired -> a fresh token first;
  // 4008 rate limited -> wait at least 10 s; 4029 too many sessions -> 30 s.
  if (code === 4001) session.stale = true;
  scheduleReconnect({ 4008: 10_000, 4029: 30_000 }[code] || 0);
}

// Exponential backoff from 0.5 s doubling to 30 s; the wait is drawn between half
// and all of it, so that clients dropped together do not return together.
function scheduleReconnect(minDelayMs = 0) {
  const ceiling = Math.min(30_000, 500 * 2 ** conn.attempt);
  const delay = Math.max(minDelayMs, ceiling / 2 + (Math.random() * ceiling) / 2);
  conn.attempt++;
  conn.retryAt = Date.now() + delay;
  conn.retryTimer = setTimeout(connect, delay);
  setConnState('disconnected');
}

// Drops a connection that stopped answering (the close handshake on a dead link
// could take minutes).
function dropConnection() {
  const ws = conn.ws;
  if (!ws) return;
  onClosed(1006);
  ws.close();
}

function onHello(hello) {
  clearTimeout(conn.helloTimer);
  conn.state = 'connected';
  conn.connectedAt = Date.now();
  conn.heartbeatMs = hello.heartbeatMs || 30_000;
  conn.lastSentAt = Date.now();
  clearInterval(conn.heartbeatTimer);
  conn.heartbeatTimer = setInterval(heartbeat, 5_000);
  setConnState('connected');
  resume();
}

// Sends a `ping` when nothing was sent for heartbeatMs; no reply in time means
// the connection is dead even if the browser has not noticed yet.
function heartbeat() {
  if (conn.state !== 'connected' || Date.now() - conn.lastSentAt < conn.heartbeatMs) return;
  request('ping', { clientTimeMs: String(Date.now()) }, PING_TIMEOUT_MS).catch((err) => {
    if (err.code === 'TIMEOUT') dropConnection();
  });
}

// Sends one command; resolves with its result (the reply's field named after the
// command) or rejects with a RequestError.
function request(command, body, timeoutMs = REQUEST_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    if (conn.state !== 'connected') {
      reject(new RequestError('DISCONNECTED', 'not connected'));
      return;
    }
    const requestId = String(conn.nextRequestId++);
    const timer = setTimeout(() => {
      conn.pending.delete(requestId);
      reject(new RequestError('TIMEOUT', `${command}: no reply in ${timeoutMs} ms`));
    }, timeoutMs);
    conn.pending.set(requestId, { command, resolve, reject, timer });
    conn.ws.send(JSON.stringify({ requestId, [command]: body }));
    conn.lastSentAt = Date.now();
  });
}

function onReply(reply) {
  const p = conn.pending.get(String(reply.requestId ?? '0'));
  if (!p) {
    if (reply.error) console.warn('chatcore: error reply', reply.error);
    return;
  }
  conn.pending.delete(String(reply.requestId));
  clearTimeout(p.timer);
  if (reply.error) {
    const e = reply.error;
    p.reject(new RequestError(e.code || 'ERROR_CODE_INTERNAL', e.message, num(e.retryAfterMs)));
  } else {
    p.resolve(reply[p.command] || {});
  }
}

function onEvent(event) {
  if (event.hello) onHello(event.hello);
  else if (event.message) onLogEntry(event.message.chatId, event);
  else if (event.messageEdited) onLogEntry(event.messageEdited.chatId, event);
  else if (event.messageDeleted) onLogEntry(event.messageDeleted.chatId, event);
  else if (event.membershipChanged) onLogEntry(event.membershipChanged.chatId, event);
  else if (event.receipt) onReceipt(event.receipt);
  else if (event.typing) onTyping(event.typing);
  else if (event.presence) onPresence(event.presence);
  else if (event.resyncRequired) onResyncRequired(event.resyncRequired);
  // Unknown events are ignored: the server may add new ones within v1.
}

// What only held while connected: ephemeral state from the server.
function onDisconnected() {
  presence.clear();
  for (const chat of chats.values()) {
    for (const timer of chat.typing.values()) clearTimeout(timer);
    chat.typing.clear();
    chat.syncing = false;
  }
  typing.chatId = null;
  for (const item of outbox) if (item.state === 'sending') item.state = 'queued';
  render();
}

// ---- 4. Chats and their logs -----------------------------------------------------
//
// Each chat is a log of entries numbered by seq (messages, edits, deletions,
// membership changes). For a chat whose log we hold, `applied` is the highest seq
// applied, and every entry goes through the gap rules (receiveEntries):
//   seq <= applied      a duplicate: ignore;
//   seq == applied + 1  apply it;
//   seq >  applied + 1  hold it and fetch the gap with getHistory afterSeq.
// Chats we have not opened are summaries only (applied === null): their entries
// just update the chat list (last message, unread count).

const HISTORY_PAGE = 50;
// An entry is an Event with one field. Kinds this client does not know (the
// server may add some within v1) still take their seq: they apply as no-ops.
const entryBody = (entry) => Object.values(entry)[0] || {};
const seqOf = (entry) => num(entryBody(entry).seq);

const chats = new Map(); // chatId -> chat (newChat below)

function newChat(chatId) {
  const direct = chatId.startsWith('d:');
  return {
    chatId,
    kind: direct ? 'CHAT_KIND_DIRECT' : 'CHAT_KIND_GROUP',
    title: '',
    peerId: direct ? peerOfDirect(chatId) : '',
    memberIds: [],
    lastSeq: 0, // newest seq known (from the list or from entries)
    readSeq: 0, // our read pointer
    unreadCount: 0,
    lastMessage: null,
    createdAtMs: 0,
    // The local log: null until the chat is opened.
    applied: null,
    items: new Map(), // seq -> message or membership change, as displayed
    held: new Map(), // seq -> entry waiting for the gap before it
    oldestSeq: 0, // lowest seq loaded
    hasOlder: false, // more history before oldestSeq
    loading: false,
    loadingOlder: false,
    catchingUp: false,
    syncing: false,
    markingRead: 0,
    // Ephemeral, from events.
    readBy: new Map(), // userId -> their read seq
    typing: new Map(), // userId -> expiry timer
  };
}

// Adds or refreshes a chat from a Chat of listChats / createDirectChat / createGroup.
function upsertChat(summary) {
  let chat = chats.get(summary.chatId);
  if (!chat) chats.set(summary.chatId, (chat = newChat(summary.chatId)));
  chat.kind = summary.kind || chat.kind;
  chat.title = summary.title || chat.title;
  chat.peerId = summary.peerId || chat.peerId;
  if (summary.memberIds) chat.memberIds = summary.memberIds;
  chat.createdAtMs = num(summary.createdAtMs) || chat.createdAtMs;
  chat.readSeq = Math.max(chat.readSeq, num(summary.readSeq));
  if (num(summary.lastSeq) >= chat.lastSeq) {
    chat.lastSeq = num(summary.lastSeq);
    chat.unreadCount = num(summary.unreadCount);
    if (summary.lastMessage) chat.lastMessage = summary.lastMessage;
  }
  render();
  return chat;
}

// A chat first heard of through an event (someone wrote to us, or added us to a
// group): start from its id, and fetch the list for its title and counts.
let listRefreshTimer = 0;
function ensureChat(chatId) {
  let chat = chats.get(chatId);
  if (!chat) {
    chats.set(chatId, (chat = newChat(chatId)));
    clearTimeout(listRefreshTimer);
    listRefreshTimer = setTimeout(() => refreshChatList().catch(ignoreDisconnect), 200);
  }
  return chat;
}

function onLogEntry(chatId, entry) {
  const chat = ensureChat(chatId);
  receiveEntries(chat, [entry]);
  // Removed from a group (or left it): this was its last event for us.
  if (entry.membershipChanged?.removedUserIds?.includes(session.userId)) dropChat(chat);
}

function receiveEntries(chat, entries) {
  if (chat.applied === null) {
    // No local log: hold entries while it is being loaded, else keep the summary.
    for (const e of entries) {
      if (chat.loading) chat.held.set(seqOf(e), e);
      else noteNewEntry(chat, e);
    }
    render();
    return;
  }
  for (const e of entries) if (seqOf(e) > chat.applied) chat.held.set(seqOf(e), e);
  while (chat.held.has(chat.applied + 1)) {
    const e = chat.held.get(chat.applied + 1);
    chat.held.delete(chat.applied + 1);
    applyEntry(chat, e);
    chat.applied++;
    noteNewEntry(chat, e);
  }
  for (const seq of chat.held.keys()) if (seq <= chat.applied) chat.held.delete(seq);
  // A gap: fetch it (unless a sync or a catch-up of this chat is on its way).
  if (chat.held.size && !chat.syncing && !chat.catchingUp) catchUp(chat);
  render();
  markReadIfVisible();
}

// Puts one entry into the displayed log.
function applyEntry(chat, entry) {
  if (entry.message) {
    const m = entry.message;
    const seq = num(m.seq);
    chat.items.set(seq, {
      type: 'message',
      seq,
      senderId: m.senderId || '',
      text: m.text || '',
      hasPayload: !!m.payload,
      sentAtMs: num(m.sentAtMs),
      editedAtMs: num(m.editedAtMs),
      deleted: !!m.deleted,
      updatedSeq: num(m.updatedSeq) || seq,
    });
    if (m.senderId === session.userId) settleOutbox(m.clientMsgId);
    stopTypingOf(chat, m.senderId);
  } else if (entry.messageEdited || entry.messageDeleted) {
    // Edits and deletions change the message at targetSeq, unless it already
    // reflects a later change (updatedSeq); without the message, nothing to do.
    const x = entry.messageEdited || entry.messageDeleted;
    const target = chat.items.get(num(x.targetSeq));
    if (!target || target.type !== 'message' || num(x.seq) <= target.updatedSeq) return;
    target.updatedSeq = num(x.seq);
    if (entry.messageEdited) {
      target.text = x.text || '';
      target.editedAtMs = num(x.editedAtMs);
    } else {
      target.deleted = true;
      target.text = '';
      target.hasPayload = false;
    }
    if (num(chat.lastMessage?.seq) === target.seq) {
      chat.lastMessage = { ...chat.lastMessage, text: target.text, deleted: target.deleted };
    }
  } else if (entry.membershipChanged) {
    const x = entry.membershipChanged;
    const added = x.addedUserIds || [];
    const removed = x.removedUserIds || [];
    const seq = num(x.seq);
    chat.items.set(seq, { type: 'membership', seq, added, removed, by: x.byUserId || '' });
    const members = new Set([...chat.memberIds, ...added]);
    for (const u of removed) members.delete(u);
    chat.memberIds = [...members];
  }
}

// The chat list's view of a new entry: last message, unread count.
function noteNewEntry(chat, entry) {
  const seq = seqOf(entry);
  if (seq <= chat.lastSeq) return;
  chat.lastSeq = seq;
  const m = entry.message;
  if (!m) return;
  chat.lastMessage = m;
  // Unread, unless the user is looking at it (markReadIfVisible reports it read).
  if (m.senderId !== session.userId && seq > chat.readSeq && !isBeingRead(chat)) chat.unreadCount++;
}

// Opens a chat's log: the newest page; older pages on demand (loadOlder).
async function loadChat(chat) {
  if (chat.applied !== null || chat.loading) return;
  chat.loading = true;
  try {
    const page = await request('getHistory', { chatId: chat.chatId, limit: HISTORY_PAGE });
    const entries = page.entries || [];
    chat.items = new Map();
    for (const e of entries) applyEntry(chat, e);
    chat.applied = entries.length ? seqOf(entries[entries.length - 1]) : num(page.lastSeq);
    chat.oldestSeq = entries.length ? seqOf(entries[0]) : chat.applied + 1;
    chat.hasOlder = !!page.hasMore && entries.length > 0;
    for (const e of entries) noteNewEntry(chat, e);
  } catch (err) {
    if (err.code === 'ERROR_CODE_NOT_MEMBER' || err.code === 'ERROR_CODE_NOT_FOUND') dropChat(chat);
    else ignoreDisconnect(err);
    return;
  } finally {
    chat.loading = false;
  }
  ui.scrollToBottom = true;
  receiveEntries(chat, []); // what arrived while loading
}

// Scrolling back: the page before the oldest loaded entry.
async function loadOlder(chat) {
  if (chat.applied === null || !chat.hasOlder || chat.loadingOlder) return;
  chat.loadingOlder = true;
  try {
    const page = await request('getHistory', {
      chatId: chat.chatId,
      beforeSeq: String(chat.oldestSeq),
      limit: HISTORY_PAGE,
    });
    const entries = (page.entries || []).filter((e) => seqOf(e) < chat.oldestSeq);
    for (const e of entries) applyEntry(chat, e);
    if (entries.length) chat.oldestSeq = seqOf(entries[0]);
    chat.hasOlder = !!page.hasMore && entries.length > 0;
  } catch (err) {
    ignoreDisconnect(err);
  } finally {
    chat.loadingOlder = false;
  }
  render();
}

// Fills the gap after `applied` with getHistory afterSeq, page by page, then the
// held entries follow (receiveEntries).
async function catchUp(chat) {
  if (chat.catchingUp || chat.applied === null) return;
  chat.catchingUp = true;
  try {
    for (;;) {
      const after = chat.applied;
      const page = await request('getHistory', {
        chatId: chat.chatId,
        afterSeq: String(after),
        limit: 200,
      });
      const entries = page.entries || [];
      // The entries right after `applied` no longer exist (retention): reload.
      if (num(page.firstSeq) > after + 1 || (entries.length && seqOf(entries[0]) > after + 1)) {
        reloadChat(chat);
        return;
      }
      receiveEntries(chat, entries); // applies them and the held entries they reach
      // Done when the chat is whole again; stop too when a page brought nothing new.
      if (chat.applied === null || chat.applied === after) break;
      if (!page.hasMore && !chat.held.size) break;
    }
  } catch (err) {
    if (err.code === 'ERROR_CODE_HISTORY_GONE') reloadChat(chat);
    else ignoreDisconnect(err);
  } finally {
    chat.catchingUp = false;
  }
}

// Forgets the local log (entries lost, or the server says to) and loads it anew.
function reloadChat(chat) {
  chat.applied = null;
  chat.items = new Map();
  chat.held.clear();
  chat.hasOlder = false;
  chat.catchingUp = false;
  if (ui.openChatId === chat.chatId) loadChat(chat);
  render();
}

function onResyncRequired(r) {
  const chat = chats.get(r.chatId);
  if (chat) reloadChat(chat);
}

function dropChat(chat) {
  chats.delete(chat.chatId);
  if (ui.openChatId === chat.chatId) ui.openChatId = null;
  render();
}

// After every hello (docs/protocol.md, "Resume and sync"): sync the chats we hold
// a log of from their `applied`, retry unacknowledged sends, then list chats to
// find the ones we were added to while away.
async function resume() {
  try {
    flushOutbox();
    await syncChats();
    await refreshChatList();
    const open = chats.get(ui.openChatId);
    if (open && open.applied === null) loadChat(open);
    markReadIfVisible();
  } catch (err) {
    ignoreDisconnect(err);
  }
}

async function syncChats() {
  const held = [...chats.values()].filter((c) => c.applied !== null);
  for (let i = 0; i < held.length; i += 1024) {
    const batch = held.slice(i, i + 1024);
    for (const chat of batch) chat.syncing = true;
    let result;
    try {
      result = await request('sync', {
        chats: batch.map((c) => ({ chatId: c.chatId, lastSeenSeq: String(c.applied) })),
      });
    } finally {
      for (const chat of batch) chat.syncing = false;
    }
    for (const r of result.chats || []) {
      const chat = chats.get(r.chatId);
      if (!chat || chat.applied === null) continue;
      const error = r.error || 'ERROR_CODE_UNSPECIFIED';
      if (error === 'ERROR_CODE_UNSPECIFIED') {
        receiveEntries(chat, r.entries || []);
        if (r.hasMore || chat.held.size) catchUp(chat);
      } else if (error === 'ERROR_CODE_HISTORY_GONE') {
        reloadChat(chat);
      } else if (error === 'ERROR_CODE_NOT_MEMBER' || error === 'ERROR_CODE_NOT_FOUND') {
        dropChat(chat);
      }
    }
  }
}

async function refreshChatList() {
  let cursor = '';
  do {
    const page = await request('listChats', cursor ? { cursor } : {});
    for (const summary of page.chats || []) upsertChat(summary);
    cursor = page.hasMore ? page.nextCursor || '' : '';
  } while (cursor);
}

function ignoreDisconnect(err) {
  if (err.code !== 'DISCONNECTED') console.warn('chatcore:', err.code, err.message);
}

// ---- 5. Sending: the outbox ------------------------------------------------------
//
// Each message gets its clientMsgId once, when the user sends it, and keeps it for
// every retry: after a timeout, a lost connection or RATE_LIMITED / UNAVAILABLE
// the server stores it at most once (a retry of a stored send answers
// "duplicate": true). The outbox is kept in sessionStorage, so even a reload
// retries what was not acknowledged.

let outbox = []; // {chatId, clientMsgId, text, createdAtMs, state, seq, error}
// state: 'queued' -> 'sending' -> 'acked' (stored, its message entry not applied
// yet) or 'failed' (refused for good: shown with the reason)

const outboxKey = () => `chatcore.outbox.${session.userId}`;
const saveOutbox = () => sessionStorage.setItem(outboxKey(), JSON.stringify(outbox));

function loadOutbox() {
  try {
    outbox = JSON.parse(sessionStorage.getItem(outboxKey()) || '[]');
  } catch {
    outbox = [];
  }
  for (const item of outbox) if (item.state === 'sending') item.state = 'queued';
}

function sendText(chat, text) {
  const item = {
    chatId: chat.chatId,
    clientMsgId: newClientMsgId(),
    text,
    createdAtMs: Date.now(),
    state: 'queued',
  };
  outbox.push(item);
  saveOutbox();
  ui.scrollToBottom = true;
  trySend(item);
  render();
}

const RETRYABLE = ['ERROR_CODE_RATE_LIMITED', 'ERROR_CODE_UNAVAILABLE', 'ERROR_CODE_INTERNAL'];

async function trySend(item) {
  if (item.state !== 'queued' || conn.state !== 'connected') return;
  item.state = 'sending';
  try {
    const result = await request('sendMessage', {
      chatId: item.chatId,
      clientMsgId: item.clientMsgId,
      text: item.text,
    });
    item.state = 'acked';
    item.seq = num(result.seq);
    // Our own `message` event puts it into the log; it may have come already.
    const chat = chats.get(item.chatId);
    if (!chat || chat.applied === null || chat.applied >= item.seq) settleOutbox(item.clientMsgId);
  } catch (err) {
    if (err.code === 'DISCONNECTED') {
      item.state = 'queued'; // flushOutbox sends it again after the reconnect
    } else if (err.code === 'TIMEOUT' || RETRYABLE.includes(err.code)) {
      item.state = 'queued';
      setTimeout(() => trySend(item), Math.max(err.retryAfterMs, 1000));
    } else {
      item.state = 'failed';
      item.error = err.message;
    }
  }
  saveOutbox();
  render();
}

function flushOutbox() {
  for (const item of outbox) trySend(item);
}

// The message with this clientMsgId is in the log now: it leaves the outbox.
function settleOutbox(clientMsgId) {
  const before = outbox.length;
  outbox = outbox.filter((item) => item.clientMsgId !== clientMsgId);
  if (outbox.length !== before) saveOutbox();
}

// ---- 6. Typing, receipts, presence -----------------------------------------------
//
// None of these are log entries: no seq, not stored, not replayed.

const TYPING_REFRESH_MS = 3_000; // send STARTED at most this often while typing
const TYPING_EXPIRY_MS = 6_000; // a STARTED not refreshed within this is over
const TYPING_IDLE_MS = 5_000; // no keystroke for this long: send STOPPED

const typing = { chatId: null, sentAt: 0, idleTimer: 0 };

function onComposerInput() {
  const chat = chats.get(ui.openChatId);
  if (!chat || conn.state !== 'connected') return;
  if (!$('composer-input').value) {
    stopTyping();
    return;
  }
  if (typing.chatId !== chat.chatId) stopTyping();
  const now = Date.now();
  if (typing.chatId !== chat.chatId || now - typing.sentAt >= TYPING_REFRESH_MS) {
    typing.chatId = chat.chatId;
    typing.sentAt = now;
    request('setTyping', { chatId: chat.chatId, state: 'TYPING_STATE_STARTED' }).catch(
      ignoreDisconnect,
    );
  }
  clearTimeout(typing.idleTimer);
  typing.idleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  clearTimeout(typing.idleTimer);
  if (!typing.chatId) return;
  const chatId = typing.chatId;
  typing.chatId = null;
  request('setTyping', { chatId, state: 'TYPING_STATE_STOPPED' }).catch(ignoreDisconnect);
}

function onTyping(t) {
  const chat = chats.get(t.chatId);
  if (!chat || t.userId === session.userId) return;
  stopTypingOf(chat, t.userId);
  if (t.state === 'TYPING_STATE_STARTED') {
    chat.typing.set(t.userId, setTimeout(() => stopTypingOf(chat, t.userId), TYPING_EXPIRY_MS));
  }
  render();
}

function stopTypingOf(chat, userId) {
  if (!chat.typing.has(userId)) return;
  clearTimeout(chat.typing.get(userId));
  chat.typing.delete(userId);
  render();
}

// Read receipts: ours move our read pointer (also from our other tabs), the
// others' say how far each member has read.
function onReceipt(r) {
  const chat = chats.get(r.chatId);
  if (!chat) return;
  const seq = num(r.readSeq);
  if (r.userId === session.userId) {
    if (seq > chat.readSeq) setReadSeq(chat, seq);
  } else {
    chat.readBy.set(r.userId, Math.max(seq, chat.readBy.get(r.userId) || 0));
  }
  render();
}

function setReadSeq(chat, seq, unreadCount) {
  chat.readSeq = Math.max(chat.readSeq, seq);
  if (unreadCount !== undefined) chat.unreadCount = unreadCount;
  else if (chat.readSeq >= chat.lastSeq) chat.unreadCount = 0;
  else if (chat.applied !== null && chat.oldestSeq <= chat.readSeq + 1) {
    chat.unreadCount = [...chat.items.values()].filter(
      (i) => i.type === 'message' && i.seq > chat.readSeq && i.senderId !== session.userId,
    ).length;
  }
}

// The open chat is read when the page is visible: move the read pointer to its
// newest entry (one request at a time).
const isBeingRead = (chat) =>
  chat.chatId === ui.openChatId && chat.applied !== null && document.visibilityState === 'visible';

function markReadIfVisible() {
  const chat = chats.get(ui.openChatId);
  if (!chat || !isBeingRead(chat) || conn.state !== 'connected') return;
  const seq = chat.applied;
  if (seq <= chat.readSeq || chat.markingRead) return;
  chat.markingRead = seq;
  request('markRead', { chatId: chat.chatId, seq: String(seq) })
    .then((r) => {
      chat.markingRead = 0;
      setReadSeq(chat, num(r.readSeq), num(r.unreadCount));
      markReadIfVisible(); // entries that arrived meanwhile
    })
    .catch((err) => {
      chat.markingRead = 0;
      ignoreDisconnect(err);
    })
    .finally(render);
}

// Presence of related users (the peers of our direct chats). Only known while
// connected: the server sends the current state after hello, then changes.
const presence = new Map(); // userId -> {online, lastSeenMs}

function onPresence(p) {
  presence.set(p.userId, {
    online: p.state === 'PRESENCE_STATE_ONLINE',
    lastSeenMs: num(p.lastSeenMs),
  });
  render();
}

// ---- 7. Rendering ----------------------------------------------------------------
//
// State changes call render(); the page is redrawn once per turn of the event
// loop, from the state above.

const ui = { openChatId: null, scrollToBottom: false, shown: '' };

let renderQueued = false;
function render() {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    if (!session) return;
    drawStatus();
    drawChatList();
    drawOpenChat();
  });
}

function setConnState(state) {
  conn.state = state;
  render();
}

function drawStatus() {
  const status = $('conn-status');
  status.dataset.state = conn.state;
  if (conn.state === 'connected') status.textContent = 'online';
  else if (conn.state === 'connecting') status.textContent = 'connecting…';
  else if (conn.stopped) status.textContent = 'offline';
  else {
    const s = Math.max(1, Math.ceil((conn.retryAt - Date.now()) / 1000));
    status.textContent = `offline, reconnecting in ${s} s`;
  }
  $('me').textContent = session.userId;
}

const chatName = (chat) =>
  chat.kind === 'CHAT_KIND_DIRECT' ? chat.peerId : chat.title || `group ${chat.chatId}`;

function presenceText(userId) {
  const p = presence.get(userId);
  if (!p) return { state: 'unknown', text: '' };
  if (p.online) return { state: 'online', text: 'online' };
  const seen = p.lastSeenMs ? `, last seen ${timeOf(p.lastSeenMs)}` : '';
  return { state: 'offline', text: `offline${seen}` };
}

function lastActivity(chat) {
  return num(chat.lastMessage?.sentAtMs) || chat.createdAtMs;
}

function drawChatList() {
  const list = $('chat-list');
  const sorted = [...chats.values()].sort((a, b) => lastActivity(b) - lastActivity(a));
  let unreadTotal = 0;
  list.replaceChildren(
    ...sorted.map((chat) => {
      unreadTotal += chat.unreadCount;
      const direct = chat.kind === 'CHAT_KIND_DIRECT';
      const last = chat.lastMessage;
      const preview = last ? (last.deleted ? 'message deleted' : last.text || '(attachment)') : '';
      const item = el(
        'li',
        {
          'data-testid': 'chat-item',
          'data-chat-id': chat.chatId,
          class: chat.chatId === ui.openChatId ? 'active' : '',
          tabindex: 0,
        },
        direct
          ? el('span', { class: 'dot', 'data-presence': presenceText(chat.peerId).state })
          : null,
        el('span', { class: 'chat-name', 'data-testid': 'chat-name' }, chatName(chat)),
        el('span', { class: 'preview' }, preview),
        chat.unreadCount
          ? el('span', { class: 'badge', 'data-testid': 'unread-badge' }, String(chat.unreadCount))
          : null,
      );
      item.addEventListener('click', () => openChat(chat.chatId));
      item.addEventListener('keydown', (ev) => ev.key === 'Enter' && openChat(chat.chatId));
      return item;
    }),
  );
  document.title = unreadTotal ? `(${unreadTotal}) chatcore` : 'chatcore';
}

function drawOpenChat() {
  const chat = chats.get(ui.openChatId);
  $('no-chat').hidden = !!chat;
  $('chat-open').hidden = !chat;
  if (!chat) return;

  $('chat-title').textContent = chatName(chat);
  if (chat.kind === 'CHAT_KIND_DIRECT') {
    const pres = presenceText(chat.peerId);
    $('peer-presence').textContent = pres.text;
    $('peer-presence').dataset.state = pres.state;
  } else {
    const n = chat.memberIds.length;
    $('peer-presence').textContent = n ? `${n} members` : '';
    $('peer-presence').dataset.state = 'group';
  }

  // The list is rebuilt only when what it shows changed, so that typing and
  // presence events leave the user's selection and scroll position alone.
  const items = [...chat.items.values()].sort((a, b) => a.seq - b.seq);
  const pending = outbox.filter(
    (item) =>
      item.chatId === chat.chatId &&
      !(item.state === 'acked' && chat.applied !== null && item.seq <= chat.applied),
  );
  const shown = JSON.stringify([chat.chatId, items, pending]);
  const box = $('messages');
  if (shown !== ui.shown) {
    ui.shown = shown;
    const fromBottom = box.scrollHeight - box.scrollTop - box.clientHeight;
    $('message-list').replaceChildren(...items.map(drawItem), ...pending.map(drawPending));
    // Stay at the bottom when we were there; otherwise keep what the user looks
    // at in place, also when older messages were added above.
    if (fromBottom < 40) box.scrollTop = box.scrollHeight;
    else box.scrollTop = box.scrollHeight - box.clientHeight - fromBottom;
  }
  if (ui.scrollToBottom) box.scrollTop = box.scrollHeight; // just opened, or sent
  ui.scrollToBottom = false;
  $('message-list').dataset.loaded = chat.applied === null ? 'false' : 'true';
  $('load-older').hidden = !chat.hasOlder;

  $('read-by').textContent = readByText(chat);
  const typists = [...chat.typing.keys()];
  $('typing').textContent = typists.length
    ? `${typists.join(', ')} ${typists.length === 1 ? 'is' : 'are'} typing…`
    : '';
}

function drawItem(item) {
  if (item.type === 'membership') {
    const parts = [];
    if (item.added.length) parts.push(`${item.by} added ${item.added.join(', ')}`);
    if (item.removed.length) {
      parts.push(
        item.removed.length === 1 && item.removed[0] === item.by
          ? `${item.by} left`
          : `${item.by} removed ${item.removed.join(', ')}`,
      );
    }
    const attrs = { class: 'system', 'data-testid': 'system-entry', 'data-seq': item.seq };
    return el('li', attrs, parts.join('; '));
  }
  const mine = item.senderId === session.userId;
  let text = item.text || (item.hasPayload ? '(attachment)' : '');
  if (item.deleted) text = 'message deleted';
  const edited = item.editedAtMs && !item.deleted ? ' (edited)' : '';
  return el(
    'li',
    {
      class: `message ${mine ? 'mine' : 'theirs'}${item.deleted ? ' deleted' : ''}`,
      'data-testid': 'message',
      'data-seq': item.seq,
      'data-sender': item.senderId,
      'data-state': 'sent',
    },
    el('span', { class: 'sender', 'data-testid': 'message-sender' }, item.senderId),
    el('span', { class: 'text', 'data-testid': 'message-text' }, text),
    el('span', { class: 'time' }, timeOf(item.sentAtMs) + edited),
  );
}

function drawPending(item) {
  const status = {
    queued: 'waiting to send',
    sending: 'sending…',
    acked: 'sent',
    failed: `not sent: ${item.error}`,
  };
  return el(
    'li',
    {
      class: `message mine pending${item.state === 'failed' ? ' failed' : ''}`,
      'data-testid': 'message',
      'data-sender': session.userId,
      'data-state': item.state === 'failed' ? 'failed' : 'pending',
      'data-client-msg-id': item.clientMsgId,
    },
    el('span', { class: 'sender', 'data-testid': 'message-sender' }, session.userId),
    el('span', { class: 'text', 'data-testid': 'message-text' }, item.text),
    el('span', { class: 'time' }, status[item.state]),
  );
}

// "Read by bob, carol": the members whose read pointer passed our newest message.
function readByText(chat) {
  let newestMine = 0;
  for (const item of chat.items.values()) {
    if (item.type === 'message' && item.senderId === session.userId) {
      newestMine = Math.max(newestMine, item.seq);
    }
  }
  if (!newestMine) return '';
  const readers = [...chat.readBy].filter(([, seq]) => seq >= newestMine).map(([user]) => user);
  return readers.length ? `Read by ${readers.sort().join(', ')}` : '';
}

// ---- 8. User actions, start-up ---------------------------------------------------

function openChat(chatId) {
  if (typing.chatId && typing.chatId !== chatId) stopTyping();
  ui.openChatId = chatId;
  ui.scrollToBottom = true;
  const chat = chats.get(chatId);
  if (chat && chat.applied === null && conn.state === 'connected') loadChat(chat);
  markReadIfVisible();
  render();
  queueMicrotask(() => $('composer-input').focus()); // once drawn
}

function showError(id, err) {
  $(id).textContent = err ? err.message || String(err) : '';
}

async function openDirect(peerId) {
  if (!USER_ID.test(peerId)) throw new Error('a user name is 1-64 of A-Z a-z 0-9 . _ @ -');
  if (peerId === session.userId) throw new Error('that is you');
  const existing = chats.get(directChatId(session.userId, peerId));
  if (existing) {
    openChat(existing.chatId);
    return;
  }
  const result = await request('createDirectChat', { peerId });
  openChat(upsertChat(result.chat).chatId);
}

async function createGroup(title, members) {
  const memberIds = members.split(/[\s,]+/).filter(Boolean);
  const bad = memberIds.find((u) => !USER_ID.test(u));
  if (bad) throw new Error(`not a user name: ${bad}`);
  const result = await request('createGroup', { title, memberIds });
  openChat(upsertChat(result.chat).chatId);
}

function onSubmit(formId, action) {
  $(formId).addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await action();
    } catch (err) {
      showError(formId === 'login-form' ? 'login-error' : 'side-error', err);
      return;
    }
    showError(formId === 'login-form' ? 'login-error' : 'side-error', null);
  });
}

function startSession() {
  $('login-view').hidden = true;
  $('chat-view').hidden = false;
  $('logout').hidden = false;
  loadOutbox();
  conn.stopped = false;
  conn.attempt = 0;
  connect();
  render();
}

function logout() {
  conn.stopped = true;
  clearTimeout(conn.retryTimer);
  const ws = conn.ws;
  if (ws) {
    onClosed(1000);
    ws.close(1000);
  }
  sessionStorage.clear();
  location.reload();
}

function main() {
  onSubmit('login-form', async () => {
    await login($('login-user').value.trim());
    startSession();
  });
  onSubmit('direct-form', async () => {
    await openDirect($('peer-input').value.trim());
    $('peer-input').value = '';
  });
  onSubmit('group-form', async () => {
    await createGroup($('group-title').value.trim(), $('group-members').value);
    $('group-title').value = '';
    $('group-members').value = '';
  });
  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const chat = chats.get(ui.openChatId);
    const text = $('composer-input').value.trim();
    if (!chat || !text) return;
    $('composer-input').value = '';
    stopTyping();
    sendText(chat, text);
  });
  $('composer-input').addEventListener('input', onComposerInput);
  $('logout').addEventListener('click', logout);
  $('load-older').addEventListener('click', () => loadOlder(chats.get(ui.openChatId)));
  $('messages').addEventListener('scroll', () => {
    const chat = chats.get(ui.openChatId);
    if (chat && $('messages').scrollTop < 40) loadOlder(chat);
  });
  document.addEventListener('visibilitychange', markReadIfVisible);
  // The network came back: do not wait for the backoff.
  window.addEventListener('online', () => {
    if (!conn.ws && !conn.stopped) {
      conn.attempt = 0;
      connect();
    }
  });
  // Leaving the page: say goodbye now, so that the others see us go offline at
  // once; a page restored from the back/forward cache connects again.
  window.addEventListener('pagehide', () => {
    const ws = conn.ws;
    if (!ws || conn.stopped) return;
    conn.stopped = true;
    onClosed(1001);
    ws.close(1000, 'page closed');
  });
  window.addEventListener('pageshow', (ev) => {
    if (ev.persisted && session) startSession();
  });
  // Keep the "reconnecting in N s" countdown current.
  setInterval(() => conn.state === 'disconnected' && !conn.stopped && render(), 1000);

  try {
    session = JSON.parse(sessionStorage.getItem(SESSION_KEY));
  } catch {
    session = null;
  }
  if (session) startSession();
}

main();
