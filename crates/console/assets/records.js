// The record browser: a shard and a starting position (GetShardIterator's types), records decoded
// as text, JSON or hex, page forward with NextShardIterator, or follow live (GetRecords once a
// second, within a shard's five reads per second). At most MAX_ROWS rows are kept.

import { kinesis } from "./aws.js";
import { errorBox, fill, formatTime, h, table } from "./dom.js";

const PAGE = 25;
const MAX_ROWS = 500;
const FOLLOW_MS = 1000;

function decode(base64, format) {
  const binary = atob(base64);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  if (format === "hex") return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(" ");
  const text = new TextDecoder().decode(bytes);
  if (format === "json") {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return `(not JSON) ${text}`;
    }
  }
  return text;
}

export function recordBrowser(body, name) {
  const shard = h("select", { id: "records-shard" });
  const position = h(
    "select",
    { id: "records-position" },
    ["TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER", "AT_TIMESTAMP"].map((type) =>
      h("option", { value: type }, type),
    ),
  );
  const at = h("input", { id: "records-at", placeholder: "sequence number, or time (2024-01-31T12:00:00Z)", size: 40 });
  const format = h(
    "select",
    { id: "records-format" },
    ["text", "json", "hex"].map((value) => h("option", { value }, value)),
  );
  const follow = h("input", { type: "checkbox", id: "records-follow" });
  const next = h("button", { type: "button", id: "records-next", disabled: true }, "Next page");
  const status = h("p", { id: "records-status", class: "muted", role: "status" });
  const rowsBox = h("div", { id: "records" });
  let records = [];
  let iterator = null;
  let timer = null;
  let stopped = false;

  const render = () => {
    const rows = records.map((record) => [
      h("span", { class: "mono" }, record.SequenceNumber),
      record.PartitionKey,
      formatTime(record.ApproximateArrivalTimestamp),
      h("pre", { class: "data" }, decode(record.Data, format.value)),
    ]);
    fill(rowsBox, table(["Sequence number", "Partition key", "Arrival", "Data"], rows, { id: "records-table" }));
  };

  const read = async () => {
    const output = await kinesis("GetRecords", { ShardIterator: iterator, Limit: PAGE });
    iterator = output.NextShardIterator ?? null;
    records.push(...output.Records);
    if (records.length > MAX_ROWS) records = records.slice(-MAX_ROWS);
    render();
    next.disabled = !iterator;
    status.textContent = iterator
      ? `${records.length} records shown · ${output.MillisBehindLatest ?? 0} ms behind latest`
      : `${records.length} records shown · the shard is closed and fully read`;
    return output.Records.length;
  };

  const schedule = () => {
    clearTimeout(timer);
    if (stopped || !follow.checked || !iterator) return;
    timer = setTimeout(async () => {
      try {
        await read();
      } catch (error) {
        fill(status, errorBox(error));
      }
      schedule();
    }, FOLLOW_MS);
  };

  const start = async (event) => {
    event.preventDefault();
    const input = { StreamName: name, ShardId: shard.value, ShardIteratorType: position.value };
    if (position.value.endsWith("SEQUENCE_NUMBER")) input.StartingSequenceNumber = at.value.trim();
    if (position.value === "AT_TIMESTAMP") input.Timestamp = Date.parse(at.value.trim()) / 1000;
    records = [];
    try {
      iterator = (await kinesis("GetShardIterator", input)).ShardIterator;
      await read();
    } catch (error) {
      fill(status, errorBox(error));
    }
    schedule();
  };

  next.addEventListener("click", async () => {
    try {
      await read();
    } catch (error) {
      fill(status, errorBox(error));
    }
  });
  follow.addEventListener("change", schedule);
  format.addEventListener("change", render);

  fill(
    body,
    h("h2", {}, "Records"),
    h(
      "form",
      { id: "records-form", class: "inline", onsubmit: start },
      h("label", {}, "Shard ", shard),
      h("label", {}, "From ", position),
      at,
      h("label", {}, "Show as ", format),
      h("button", { type: "submit", id: "records-read" }, "Read"),
      next,
      h("label", {}, follow, " Follow live"),
    ),
    status,
    rowsBox,
  );
  kinesis("ListShards", { StreamName: name }).then(
    ({ Shards: shards }) => fill(shard, shards.map((s) => h("option", { value: s.ShardId }, s.ShardId))),
    (error) => fill(status, errorBox(error)),
  );
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
