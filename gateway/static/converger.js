/*! converger.js — a small browser (and node) client for converger's real-time API.
 *
 * No dependencies and no build step: it speaks the Phoenix Channels protocol (serializer 2.0.0)
 * itself. Served by the gateway at /static/converger.js.
 *
 *   const client = new ConvergerClient("/socket");          // legacy socket, user token
 *   client.onActivity(a => console.log(a.sender, a.text));
 *   await client.connect(token);
 *   await client.joinConversation(conversationId);
 *   await client.sendMessage("hello");
 *
 *   // Converger API (Direct-Line style): token from POST /api/v1/converger/conversations
 *   const cg = new ConvergerClient("/socket/converger", { mode: "converger" });
 *
 * Resume: the client remembers the last activity it delivered (its id and seq on the legacy
 * socket, its watermark on the Converger socket) and rejoins from there after a reconnect, so
 * nothing is lost; activities it has already delivered are skipped, so nothing is duplicated.
 * Messages sent while disconnected are queued and sent once rejoined, with the same
 * idempotency key, so a retried send never creates a second activity.
 *
 * Rich messages (1.1): onDeliveryStatus (sent/delivered/read/failed ticks of the legacy
 * socket's delivery_status pushes), onTyping and sendTyping, sendAttachment (upload a File or
 * Blob once, then post it; sendMessage(text, {attachments: [{upload_id}]}) re-sends it),
 * sendTemplate (a WhatsApp template), onReconnect and the "reconnecting" status.
 * 1.2: onAttachmentStatus (an inbound file's background download: pending, stored with its
 * contentUrl, failed with its error); delivery_status also in converger mode.
 * TypeScript declarations: converger.d.ts (the npm package, clients/js/).
 */
(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory();
  else root.ConvergerClient = factory();
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  const VSN = "2.0.0";
  const BACKOFF_MS = [100, 250, 500, 1000, 2000, 5000];

  function uuid() {
    if (typeof crypto !== "undefined" && crypto.randomUUID) return crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (c) => {
      const r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
    });
  }

  function defaultBase(path) {
    if (typeof location === "undefined") return "ws://localhost:4000" + path;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + path;
  }

  function absolute(url) {
    if (/^wss?:\/\//.test(url)) return url;
    if (/^https?:\/\//.test(url)) return url.replace(/^http/, "ws");
    return defaultBase(url);
  }

  class ConvergerClient {
    /**
     * @param {string} [baseUrl] socket base, e.g. "ws://host:4000/socket" or "/socket/converger"
     * @param {object} [options] mode: "legacy" | "converger"; apiUrl (for Converger sends);
     *   heartbeatMs; WebSocket (a constructor, for node); log (a function)
     */
    constructor(baseUrl, options) {
      this.options = options || {};
      this.mode = this.options.mode || "legacy";
      const path = this.mode === "converger" ? "/socket/converger" : "/socket";
      this.baseUrl = absolute(baseUrl || path).replace(/\/websocket$/, "").replace(/\/$/, "");
      this.apiUrl = (this.options.apiUrl ||
        (typeof location !== "undefined" ? location.origin : "http://localhost:4000")).replace(/\/$/, "");
      this.heartbeatMs = this.options.heartbeatMs || 30000;
      this.WS = this.options.WebSocket || (typeof WebSocket !== "undefined" ? WebSocket : null);
      this.log = this.options.log || function () {};
      this.token = null;
      this.conversationId = null;
      this.topic = null;
      this.joinRef = null;
      this.joined = false;
      this.lastActivityId = null;
      this.lastSeq = 0;
      this.watermark = null;
      this._seen = new Set();
      this._seenOrder = [];
      this._ref = 0;
      this._replies = new Map();
      this._outbox = [];
      this._activityCbs = [];
      this._statusCbs = [];
      this._deliveryCbs = [];
      this._attachmentCbs = [];
      this._typingCbs = [];
      this._reconnectCbs = [];
      this._ws = null;
      this._attempt = 0;
      this._closedByUser = false;
      this._heartbeatTimer = null;
      this._pendingHeartbeat = null;
      this._reconnectTimer = null;
      this._joinWaiters = [];
    }

    /** Called with each new activity, once, in order. */
    onActivity(callback) { this._activityCbs.push(callback); return this; }

    /** Called with "connecting" | "open" | "joined" | "closed" | "reconnecting" | "error". */
    onStatus(callback) { this._statusCbs.push(callback); return this; }

    /** Called with each delivery_status push: {delivery_id, activity_id, channel_id, status, …}. */
    onDeliveryStatus(callback) { this._deliveryCbs.push(callback); return this; }

    /**
     * Called with each attachment_status push — an inbound file the gateway downloads changed
     * state: {activity_id, index, status: "pending"|"stored"|"failed", error, attempts,
     * attachment} (attachment.contentUrl once stored).
     */
    onAttachmentStatus(callback) { this._attachmentCbs.push(callback); return this; }

    /** Called with each typing activity of someone else (also given to onActivity). */
    onTyping(callback) { this._typingCbs.push(callback); return this; }

    /** Called before each reconnect attempt with {attempt, delayMs}. */
    onReconnect(callback) { this._reconnectCbs.push(callback); return this; }

    get connected() { return !!this._ws && this._ws.readyState === 1; }

    /** Open the socket with a token; resolves when it is open. Reconnects by itself. */
    connect(token) {
      if (token) this.token = token;
      if (!this.token) return Promise.reject(new Error("a token is required"));
      this._closedByUser = false;
      if (this.connected) return Promise.resolve(this);
      if (this._ws) { const old = this._ws; this._ws = null; old.close(1000, "reconnect"); }
      clearTimeout(this._reconnectTimer);
      return new Promise((resolve, reject) => this._open(resolve, reject));
    }

    /** Close for good (no reconnect). */
    disconnect() {
      this._closedByUser = true;
      clearTimeout(this._reconnectTimer);
      this._stopHeartbeat();
      if (this._ws) this._ws.close(1000, "client disconnect");
      this._ws = null;
      this.joined = false;
      this._status("closed");
    }

    /** Join a conversation; resolves on the server's ok, rejects with its reason. */
    joinConversation(conversationId) {
      if (!this._ws) return Promise.reject(new Error("Socket not connected"));
      if (this.conversationId !== conversationId) {
        this.conversationId = conversationId;
        this.lastActivityId = null; this.lastSeq = 0; this.watermark = null;
        this._seen.clear(); this._seenOrder = [];
      }
      this.topic = (this.mode === "converger" ? "converger:conversation:" : "conversation:") + conversationId;
      return new Promise((resolve, reject) => {
        this._joinWaiters.push({ resolve, reject });
        if (this.connected) this._join();
      });
    }

    /** Send a text message (plus optional fields); resolves with the server's answer. */
    sendMessage(text, extra) {
      if (!this.conversationId) return Promise.reject(new Error("Channel not joined"));
      const item = { body: Object.assign({ text: text }, extra || {}), key: uuid() };
      if (this.mode === "converger") return this._post(item);
      return new Promise((resolve, reject) => {
        item.resolve = resolve; item.reject = reject;
        this._outbox.push(item);
        this._flush();
      });
    }

    /** Tell the conversation this user is typing (a "typing" activity). */
    sendTyping(extra) {
      return this.sendMessage(null, Object.assign({ type: "typing" }, extra || {}));
    }

    /**
     * Send a WhatsApp template: name, language ("en_US"), components in the Cloud API's shape,
     * e.g. [{type: "body", parameters: [{type: "text", text: "Ada"}]}].
     */
    sendTemplate(name, language, components, extra) {
      const template = { name: name, language: language, components: components || [] };
      return this.sendMessage(null, Object.assign({ type: "template", metadata: { template: template } },
        extra || {}));
    }

    /**
     * Upload a file (a File or Blob; name for a Blob) and send it as an activity with ``text``;
     * resolves with {id, upload_id, attachment}. Reference the upload again later with
     * sendMessage(text, {attachments: [{upload_id}]}). Uses the Converger API's upload
     * (a Converger conversation token).
     */
    async sendAttachment(file, text, name) {
      if (!this.conversationId) throw new Error("Channel not joined");
      const form = new FormData();
      form.append("file", file, name || file.name || "file");
      form.append("activity", JSON.stringify({ type: "message", text: text || "" }));
      const url = this.apiUrl + "/api/v1/converger/conversations/" + this.conversationId + "/upload";
      const r = await fetch(url, { method: "POST", body: form,
        headers: { "authorization": "Bearer " + this.token } });
      const answer = await r.json();
      if (!r.ok) throw Object.assign(new Error(answer.detail || answer.error || "upload failed"),
        { status: r.status, answer });
      return answer;
    }

    // -- internals -------------------------------------------------------------------------
    _status(s) { this._each(this._statusCbs, s); }

    _each(cbs, value) { for (const cb of cbs) { try { cb(value); } catch (e) { this.log(e); } } }

    _open(resolve, reject) {
      const url = this.baseUrl + "/websocket?" + new URLSearchParams({ token: this.token, vsn: VSN });
      this._status("connecting");
      let opened = false;
      const ws = new this.WS(url);
      this._ws = ws;
      ws.onopen = () => {
        opened = true;
        this._attempt = 0;
        this._status("open");
        this._startHeartbeat();
        if (this.topic) this._join();
        if (resolve) resolve(this);
      };
      ws.onmessage = (ev) => this._onFrame(ev.data);
      ws.onerror = () => this._status("error");
      ws.onclose = () => {
        if (this._ws !== ws) return;
        this._ws = null;
        this.joined = false;
        this._stopHeartbeat();
        for (const [, r] of this._replies) if (r.onClose) r.onClose();
        this._replies.clear();
        this._status("closed");
        if (!opened && reject && this._attempt === 0) { reject(new Error("connection refused")); }
        if (!this._closedByUser) this._scheduleReconnect();
      };
    }

    _scheduleReconnect() {
      const delay = BACKOFF_MS[Math.min(this._attempt, BACKOFF_MS.length - 1)];
      this._attempt += 1;
      this._status("reconnecting");
      this._each(this._reconnectCbs, { attempt: this._attempt, delayMs: delay });
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = setTimeout(() => { if (!this._closedByUser) this._open(); }, delay);
    }

    _send(topic, event, payload, joinRef, onReply, onClose) {
      const ref = String(++this._ref);
      if (onReply) this._replies.set(ref, { onReply, onClose });
      this._ws.send(JSON.stringify([joinRef || null, ref, topic, event, payload]));
      return ref;
    }

    _startHeartbeat() {
      this._stopHeartbeat();
      this._heartbeatTimer = setInterval(() => {
        if (!this.connected) return;
        if (this._pendingHeartbeat) {  // no answer to the last one: the link is dead
          this._pendingHeartbeat = null;
          this._ws.close(1000, "heartbeat timeout");
          return;
        }
        this._pendingHeartbeat = this._send("phoenix", "heartbeat", {}, null,
          () => { this._pendingHeartbeat = null; });
      }, this.heartbeatMs);
    }

    _stopHeartbeat() {
      clearInterval(this._heartbeatTimer);
      this._heartbeatTimer = null;
      this._pendingHeartbeat = null;
    }

    _join() {
      const payload = {};
      if (this.mode === "converger") { if (this.watermark) payload.watermark = this.watermark; }
      else if (this.lastActivityId) payload.last_activity_id = this.lastActivityId;
      const topic = this.topic;
      const ref = String(this._ref + 1);
      this.joinRef = ref;
      this._send(topic, "phx_join", payload, ref, (status, response) => {
        const waiters = this._joinWaiters.splice(0);
        if (status === "ok") {
          this.joined = true;
          this._status("joined");
          waiters.forEach((w) => w.resolve(response));
          this._flush();
        } else {
          this.log("join failed", response);
          waiters.forEach((w) => w.reject(new Error((response && response.reason) || "join failed")));
        }
      });
    }

    _flush() {
      if (!this.joined || !this.connected) return;
      for (const item of this._outbox) {
        if (item.inFlight) continue;
        item.inFlight = true;
        const payload = Object.assign({}, item.body, { idempotency_key: item.key });
        this._send(this.topic, "new_activity", payload, this.joinRef, (status, response) => {
          this._outbox.splice(this._outbox.indexOf(item), 1);
          if (status === "ok") item.resolve(response);
          else item.reject(new Error((response && response.reason) || "send failed"));
        }, () => { item.inFlight = false; });  // lost with the socket: resent after rejoin
      }
    }

    async _post(item, attempt) {
      const url = this.apiUrl + "/api/v1/converger/conversations/" + this.conversationId + "/activities";
      const body = Object.assign({ type: "message" }, item.body);
      if (body.from === undefined && body.sender) { body.from = { id: body.sender }; delete body.sender; }
      try {
        const r = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", "authorization": "Bearer " + this.token,
            "x-idempotency-key": item.key },
          body: JSON.stringify(body),
        });
        const answer = await r.json();
        if (!r.ok) throw Object.assign(new Error(answer.detail || "send failed"), { status: r.status, answer });
        return answer;
      } catch (e) {
        // A network failure is retried with the same idempotency key; an HTTP error is final.
        if (e.status || (attempt || 0) >= 5) throw e;
        await new Promise((res) => setTimeout(res, BACKOFF_MS[attempt || 0]));
        return this._post(item, (attempt || 0) + 1);
      }
    }

    _onFrame(data) {
      let msg;
      try { msg = JSON.parse(data); } catch (e) { this.log("bad frame", data); return; }
      const [, ref, topic, event, payload] = msg;
      if (event === "phx_reply") {
        const r = this._replies.get(ref);
        if (r) { this._replies.delete(ref); r.onReply(payload.status, payload.response); }
        return;
      }
      if (topic !== this.topic) return;
      if (event === "delivery_status") { this._each(this._deliveryCbs, payload); return; }
      if (event === "attachment_status") { this._each(this._attachmentCbs, payload); return; }
      if (event === "phx_close" || event === "phx_error") {
        if (msg[0] !== this.joinRef) return;
        this.joined = false;
        if (!this._closedByUser && this.connected) setTimeout(() => { if (this.connected) this._join(); }, 250);
        return;
      }
      if (event === "new_activity") this._deliver(payload, payload.seq);
      else if (event === "activitySet") {
        for (const a of payload.activities || []) this._deliver(a, null);
        if (payload.watermark) this.watermark = payload.watermark;
      }
    }

    _deliver(activity, seq) {
      if (!activity || !activity.id || this._seen.has(activity.id)) return;
      if (seq && seq <= this.lastSeq) return;
      this._seen.add(activity.id);
      this._seenOrder.push(activity.id);
      if (this._seenOrder.length > 5000) this._seen.delete(this._seenOrder.shift());
      if (seq) this.lastSeq = seq;
      this.lastActivityId = activity.id;
      this._each(this._activityCbs, activity);
      if (activity.type === "typing") this._each(this._typingCbs, activity);
    }
  }

  ConvergerClient.VERSION = "1.2.0";
  return ConvergerClient;
});
