// Drives the official `phoenix` npm client against the gateway, for tests/e2e/test_phoenix_node.py.
// Env: SOCKET_URL (e.g. ws://127.0.0.1:4000/socket), TOKEN, TOPIC. Prints one JSON object per line
// on stdout; reads commands from stdin, one per line: {"push": "<event>", "payload": {...}} or "quit".
"use strict";
const { Socket } = require("phoenix");
const readline = require("readline");

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const socket = new Socket(process.env.SOCKET_URL, {
  params: { token: process.env.TOKEN },
  transport: WebSocket,  // node's own (run with --experimental-websocket on node 20)
  heartbeatIntervalMs: 1000,
});
socket.onOpen(() => out({ event: "open" }));
socket.onError(() => out({ event: "socket_error" }));
socket.connect();

const channel = socket.channel(process.env.TOPIC, JSON.parse(process.env.JOIN_PARAMS || "{}"));
for (const ev of ["new_activity", "activitySet", "delivery_status"]) {
  channel.on(ev, (payload) => out({ event: ev, payload }));
}
channel.join()
  .receive("ok", (resp) => out({ event: "joined", resp }))
  .receive("error", (resp) => out({ event: "join_error", resp }))
  .receive("timeout", () => out({ event: "join_timeout" }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "quit") { socket.disconnect(() => process.exit(0)); return; }
  const cmd = JSON.parse(line);
  channel.push(cmd.push, cmd.payload)
    .receive("ok", (resp) => out({ event: "reply", status: "ok", resp }))
    .receive("error", (resp) => out({ event: "reply", status: "error", resp }))
    .receive("timeout", () => out({ event: "reply", status: "timeout" }));
});
