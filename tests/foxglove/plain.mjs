// Decoded ROS messages as plain JSON: bigints as strings, byte arrays as their length and
// sha256, typed arrays as arrays (shared by read_episode.mjs and live_client.mjs).
import { createHash } from "node:crypto";

export function plain(value) {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) {
    return { bytes: value.length, sha256: createHash("sha256").update(value).digest("hex") };
  }
  if (ArrayBuffer.isView(value)) return Array.from(value);
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}
