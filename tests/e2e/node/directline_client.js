// Drives the official `botframework-directlinejs` client against the gateway's Direct Line mount,
// for tests/e2e/test_directline_node.py. Env: DOMAIN (http://127.0.0.1:PORT/v3/directline),
// SECRET or TOKEN, WEBSOCKET ("1" or "0"), optional CONVERSATION_ID, WATERMARK, REFRESH_MS.
// Prints one JSON object per line on stdout; reads commands from stdin, one JSON per line:
// {"cmd": "post", "activity": {...}, "tag": "x"} | {"cmd": "reconnect", "token": "..."} |
// {"cmd": "state"} | {"cmd": "end"}.
//
// Only the client's injectable services are touched (its Services interface): node has no
// XMLHttpRequest (xhr2 provides one), requests and sockets are logged, `random` is 0 so a
// dropped socket is retried after the client's minimum delay (3 s), and the scheduler turns
// the client's 15-minute token refresh period into REFRESH_MS — an injected clock.
"use strict";
global.XMLHttpRequest = require("xhr2");
const { DirectLine, ConnectionStatus } = require("botframework-directlinejs");
const { Observable } = require("rxjs/Observable");
require("rxjs/add/observable/dom/ajax");
require("rxjs/add/operator/do");
const { AsyncScheduler } = require("rxjs/scheduler/AsyncScheduler");
const { AsyncAction } = require("rxjs/scheduler/AsyncAction");
const readline = require("readline");

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const env = process.env;
const REFRESH_MS = Number(env.REFRESH_MS || 0);
const FIFTEEN_MINUTES = 15 * 60 * 1000;

class ClockAction extends AsyncAction {
  schedule(state, delay = 0) {
    return super.schedule(state, REFRESH_MS && delay >= FIFTEEN_MINUTES ? REFRESH_MS : delay);
  }
}

class LoggedWebSocket extends WebSocket {
  constructor(url) {
    super(url);
    out({ event: "ws_connect", url });
    this.addEventListener("open", () => out({ event: "ws_open" }));
    this.addEventListener("close", (e) => out({ event: "ws_close", code: e.code }));
  }
}

const ajax = (request) => Observable.ajax(request).do(
  (r) => out({ event: "http", method: request.method, url: request.url, status: r.status }),
  (e) => out({ event: "http", method: request.method, url: request.url, status: e.status }));

const options = {
  domain: env.DOMAIN,
  webSocket: env.WEBSOCKET === "1",
  pollingInterval: 200,
  scheduler: new AsyncScheduler(ClockAction),
  random: () => 0,
  ajax,
  WebSocket: LoggedWebSocket,
};
if (env.SECRET) options.secret = env.SECRET;
if (env.TOKEN) options.token = env.TOKEN;
if (env.CONVERSATION_ID) options.conversationId = env.CONVERSATION_ID;
if (env.WATERMARK) options.watermark = env.WATERMARK;

const dl = new DirectLine(options);
dl.connectionStatus$.subscribe((s) => out({ event: "status", status: ConnectionStatus[s] }));
dl.activity$.subscribe(
  (activity) => out({ event: "activity", activity }),
  (error) => out({ event: "activity_error", error: String(error && error.message || error) }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.cmd === "post") {
    dl.postActivity(cmd.activity).subscribe(
      (id) => out({ event: "posted", id, tag: cmd.tag }),
      (error) => out({ event: "post_error", status: error && error.status, tag: cmd.tag }));
  } else if (cmd.cmd === "reconnect") {
    dl.reconnect({ conversationId: dl.conversationId, token: cmd.token, streamUrl: cmd.streamUrl || dl.streamUrl });
  } else if (cmd.cmd === "state") {
    out({ event: "state", token: dl.token, watermark: dl.watermark, conversationId: dl.conversationId });
  } else if (cmd.cmd === "end") {
    dl.end();
    process.exit(0);
  }
});
