// Read a teleop episode the way Foxglove opens a cdr/ros2msg MCAP: @mcap/core's indexed
// reader (with @mcap/support's decompressors), @foxglove/rosmsg's parser with ros2 on, and
// @foxglove/rosmsg2-serialization's MessageReader per channel.
//
//   node read_episode.mjs FILE.mcap [--dump N]
//
// Prints one JSON object: per topic the messages read, decoded, with trailing bytes, whose
// re-encoding differs, the first error, header stamps going backwards, the frame_ids seen; a
// seek to the middle of the file; and with --dump the first N decoded messages per topic
// (byte arrays as their length and sha256) for comparison with another reader.
import { open } from "node:fs/promises";

import { parse } from "@foxglove/rosmsg";
import { MessageReader, MessageWriter } from "@foxglove/rosmsg2-serialization";
import { McapIndexedReader } from "@mcap/core";
import { loadDecompressHandlers } from "@mcap/support";
import { plain } from "./plain.mjs";

const args = process.argv.slice(2);
const file = args[0];
const dumpIdx = args.indexOf("--dump");
const dumpN = dumpIdx >= 0 ? Number(args[dumpIdx + 1]) : 0;

const handle = await open(file, "r");
const { size } = await handle.stat();
const readable = {
  size: async () => BigInt(size),
  read: async (offset, length) => {
    const buf = new Uint8Array(Number(length));
    const { bytesRead } = await handle.read(buf, 0, buf.length, Number(offset));
    if (bytesRead !== buf.length) throw new Error(`short read at ${offset}`);
    return buf;
  },
};

const reader = await McapIndexedReader.Initialize({
  readable,
  decompressHandlers: await loadDecompressHandlers(),
});


const topics = {};
const codecs = new Map(); // channel id -> {reader, writer} or {error}
for (const [id, channel] of reader.channelsById) {
  const schema = reader.schemasById.get(channel.schemaId);
  const t = (topics[channel.topic] = {
    schema: schema?.name ?? null,
    schema_encoding: schema?.encoding ?? null,
    message_encoding: channel.messageEncoding,
    messages: 0,
    decoded: 0,
    trailing_bytes: 0,
    reencode_mismatch: 0,
    stamp_backwards: 0,
    frame_ids: [],
    error: null,
    dump: [],
  });
  try {
    const text = new TextDecoder().decode(schema.data);
    const defs = parse(text, { ros2: true });
    codecs.set(id, { reader: new MessageReader(defs), writer: new MessageWriter(defs) });
  } catch (err) {
    t.error = `schema: ${err.message}`;
    codecs.set(id, null);
  }
}

const lastStamp = new Map();
let total = 0;
let first = null;
let last = null;
for await (const msg of reader.readMessages({ validateCrcs: true })) {
  total += 1;
  first = first === null || msg.logTime < first ? msg.logTime : first;
  last = last === null || msg.logTime > last ? msg.logTime : last;
  const channel = reader.channelsById.get(msg.channelId);
  const t = topics[channel.topic];
  t.messages += 1;
  const codec = codecs.get(msg.channelId);
  if (!codec) continue;
  let decoded;
  try {
    decoded = codec.reader.readMessage(msg.data);
  } catch (err) {
    t.error ??= `message ${t.messages}: ${err.message}`;
    continue;
  }
  t.decoded += 1;
  if (codec.reader.lastReadHadTrailingBytes()) t.trailing_bytes += 1;
  const again = codec.writer.writeMessage(decoded);
  if (Buffer.compare(Buffer.from(again), Buffer.from(msg.data)) !== 0) t.reencode_mismatch += 1;
  const header = decoded.header;
  if (header) {
    const stamp = BigInt(header.stamp.sec) * 1000000000n + BigInt(header.stamp.nanosec);
    const prev = lastStamp.get(channel.topic);
    if (prev !== undefined && stamp < prev) t.stamp_backwards += 1;
    lastStamp.set(channel.topic, stamp);
    if (!t.frame_ids.includes(header.frame_id)) t.frame_ids.push(header.frame_id);
  }
  if (t.dump.length < dumpN) {
    t.dump.push({ log_time: msg.logTime.toString(), sequence: msg.sequence, message: plain(decoded) });
  }
}

// Seek: start reading at the middle of the recording, as Foxglove does when the playhead jumps.
let seek = null;
if (first !== null) {
  const middle = first + (last - first) / 2n;
  let count = 0;
  let earliest = null;
  let decodedAfter = 0;
  for await (const msg of reader.readMessages({ startTime: middle, validateCrcs: true })) {
    count += 1;
    earliest = earliest === null || msg.logTime < earliest ? msg.logTime : earliest;
    const codec = codecs.get(msg.channelId);
    if (codec) {
      codec.reader.readMessage(msg.data);
      decodedAfter += 1;
    }
  }
  seek = {
    start_time: middle.toString(),
    messages: count,
    decoded: decodedAfter,
    earliest_log_time: earliest === null ? null : earliest.toString(),
  };
}
await handle.close();

process.stdout.write(
  JSON.stringify({
    file,
    profile: reader.header.profile,
    statistics_messages: reader.statistics ? Number(reader.statistics.messageCount) : null,
    messages: total,
    first_log_time: first === null ? null : first.toString(),
    last_log_time: last === null ? null : last.toString(),
    topics,
    seek,
  }),
);
