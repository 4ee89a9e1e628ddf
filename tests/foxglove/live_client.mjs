// Watch a live view the way Foxglove does: @foxglove/ws-protocol's FoxgloveClient over the
// `ws` WebSocket, each channel's advertised schema parsed by @foxglove/rosmsg (ros2) and its
// messages decoded by @foxglove/rosmsg2-serialization's MessageReader.
//
//   node live_client.mjs ws://HOST:PORT --topic T [--topic T ...] [--count N] [--timeout S]
//   node live_client.mjs ws://HOST:PORT --all --seconds S
//
// With --topic it subscribes to those topics as soon as they are advertised and stops once
// each has decoded N messages (default 3), or after --timeout seconds (default 60; exit 2).
// With --all it subscribes to every channel for S seconds. Either way it prints one JSON
// object: the subprotocol, per topic the advertised schema name/encodings, messages received,
// decoded and failed, the first error, and the first decoded message (byte arrays as their
// length and sha256).

import { parse } from "@foxglove/rosmsg";
import { MessageReader } from "@foxglove/rosmsg2-serialization";
import wsProtocol from "@foxglove/ws-protocol"; // CommonJS: no named exports
import WebSocket from "ws";
import { plain } from "./plain.mjs";

const { FoxgloveClient } = wsProtocol;

const args = process.argv.slice(2);
const url = args[0];
const topics = [];
let count = 3;
let timeoutS = 60;
let all = false;
let seconds = 0;
for (let i = 1; i < args.length; i++) {
  const a = args[i];
  if (a === "--topic") topics.push(args[++i]);
  else if (a === "--count") count = Number(args[++i]);
  else if (a === "--timeout") timeoutS = Number(args[++i]);
  else if (a === "--all") all = true;
  else if (a === "--seconds") seconds = Number(args[++i]);
  else throw new Error(`unknown argument ${a}`);
}
if (!url || (!all && topics.length === 0)) {
  throw new Error("usage: live_client.mjs ws://HOST:PORT (--topic T ... | --all --seconds S)");
}


// The SDK's server (foxglove-sdk >= 0.x, foxglove_bridge 3) speaks "foxglove.sdk.v1"; older
// servers "foxglove.websocket.v1". Both are offered; the server picks.
const ws = new WebSocket(url, ["foxglove.sdk.v1", FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
const client = new FoxgloveClient({ ws });
const result = { url, subprotocol: null, server: null, topics: {}, closed: false, error: null };
const bySubscription = new Map(); // subscription id -> {topic, reader}
let finished = false;

function finish(code) {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify(result));
  try {
    client.close();
  } catch {
    // already closed
  }
  process.exitCode = code;
  setTimeout(() => process.exit(code), 200).unref();
}

function done() {
  return (
    !all &&
    topics.length > 0 &&
    topics.every((t) => result.topics[t] && result.topics[t].decoded >= count)
  );
}

client.on("open", () => {
  result.subprotocol = ws.protocol;
});
client.on("serverInfo", (info) => {
  result.server = { name: info.name, capabilities: info.capabilities };
});
client.on("error", (err) => {
  result.error ??= String(err?.message ?? err);
});
client.on("close", () => {
  result.closed = true;
  finish(all || done() ? 0 : 2);
});
client.on("advertise", (channels) => {
  for (const ch of channels) {
    if (!all && !topics.includes(ch.topic)) continue;
    if (result.topics[ch.topic]?.subscribed) continue;
    const t = (result.topics[ch.topic] = {
      schema_name: ch.schemaName,
      schema_encoding: ch.schemaEncoding ?? null,
      encoding: ch.encoding,
      subscribed: true,
      received: 0,
      decoded: 0,
      failed: 0,
      error: null,
      first: null,
    });
    let reader = null;
    try {
      reader = new MessageReader(parse(ch.schema, { ros2: true }));
    } catch (err) {
      t.error = `schema: ${err.message}`;
    }
    const id = client.subscribe(ch.id);
    bySubscription.set(id, { topic: ch.topic, reader });
  }
});
client.on("message", ({ subscriptionId, data }) => {
  const sub = bySubscription.get(subscriptionId);
  if (!sub) return;
  const t = result.topics[sub.topic];
  t.received += 1;
  if (!sub.reader) return;
  try {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const msg = sub.reader.readMessage(bytes);
    t.decoded += 1;
    t.first ??= plain(msg);
  } catch (err) {
    t.failed += 1;
    t.error ??= `message ${t.received}: ${err.message}`;
  }
  if (done()) finish(0);
});

if (all) {
  setTimeout(() => finish(0), seconds * 1000);
} else {
  setTimeout(() => {
    result.error ??= `timed out after ${timeoutS} s`;
    finish(2);
  }, timeoutS * 1000);
}
