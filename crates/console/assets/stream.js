// One stream: its summary and tabs for the shard tree (lineage, per-shard rates, iterator age),
// the record browser, a form to put test records, and its enhanced fan-out consumers.

import { consoleGet, kinesis } from "./aws.js";
import { formatNumber } from "./chart.js";
import { errorBox, every, fill, formatTime, h, table } from "./dom.js";
import { byLabel, readMetrics } from "./metrics.js";
import { recordBrowser } from "./records.js";

const TABS = [
  ["shards", "Shards"],
  ["records", "Records"],
  ["put", "Put records"],
  ["consumers", "Consumers"],
];

export function streamPage(main, name, tab = "shards") {
  const body = h("div", { id: "stream-tab" }, "Loading…");
  const summaryBox = h("div", { id: "stream-summary" });
  const base = `#/stream/${encodeURIComponent(name)}`;
  fill(
    main,
    h("p", {}, h("a", { href: "#/" }, "← Streams")),
    h("h1", {}, name),
    summaryBox,
    h(
      "nav",
      { class: "tabs" },
      TABS.map(([id, label]) =>
        h("a", { href: `${base}/${id}`, id: `tab-${id}`, class: id === tab ? "active" : undefined }, label),
      ),
    ),
    body,
  );
  kinesis("DescribeStreamSummary", { StreamName: name }).then(
    ({ StreamDescriptionSummary: summary }) =>
      fill(
        summaryBox,
        h(
          "dl",
          { class: "summary" },
          h("dt", {}, "Status"),
          h("dd", {}, summary.StreamStatus),
          h("dt", {}, "Mode"),
          h("dd", {}, summary.StreamModeDetails?.StreamMode ?? "PROVISIONED"),
          h("dt", {}, "Open shards"),
          h("dd", {}, summary.OpenShardCount),
          h("dt", {}, "Retention"),
          h("dd", {}, `${summary.RetentionPeriodHours} h`),
          h("dt", {}, "Consumers"),
          h("dd", {}, summary.ConsumerCount ?? 0),
          h("dt", {}, "ARN"),
          h("dd", { class: "mono" }, summary.StreamARN),
        ),
      ),
    (error) => fill(summaryBox, errorBox(error)),
  );
  const pages = { shards: shardsTab, records: recordBrowser, put: putTab, consumers: consumersTab };
  return (pages[tab] ?? shardsTab)(body, name);
}

/** Depth of each shard in the lineage: roots 0, a child one more than its deepest parent. */
function depths(shards) {
  const byId = new Map(shards.map((shard) => [shard.ShardId, shard]));
  const depth = new Map();
  const of = (shard) => {
    if (depth.has(shard.ShardId)) return depth.get(shard.ShardId);
    const parents = shard.ParentShardIds.map((id) => byId.get(id)).filter(Boolean);
    const value = parents.length ? 1 + Math.max(...parents.map(of)) : 0;
    depth.set(shard.ShardId, value);
    return value;
  };
  shards.forEach(of);
  return depth;
}

const NODE_WIDTH = 190;
const NODE_HEIGHT = 52;
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** The shard tree: columns by generation, a solid line from each parent, dashed from the adjacent one. */
function shardTree(shards, perSecond) {
  const depth = depths(shards);
  const columns = [];
  for (const shard of shards) (columns[depth.get(shard.ShardId)] ??= []).push(shard);
  const place = new Map();
  columns.forEach((column, x) => column.forEach((shard, y) => place.set(shard.ShardId, { x: 10 + x * (NODE_WIDTH + 60), y: 10 + y * (NODE_HEIGHT + 16) })));
  const width = 20 + columns.length * (NODE_WIDTH + 60);
  const height = 20 + Math.max(...columns.map((column) => column.length)) * (NODE_HEIGHT + 16);
  const root = svg("svg", { width, height, id: "shard-tree", role: "img", "aria-label": "shard lineage" });
  for (const shard of shards) {
    const to = place.get(shard.ShardId);
    shard.ParentShardIds.forEach((parentId, index) => {
      const from = place.get(parentId);
      if (!from) return;
      const line = svg("line", {
        x1: from.x + NODE_WIDTH,
        y1: from.y + NODE_HEIGHT / 2,
        x2: to.x,
        y2: to.y + NODE_HEIGHT / 2,
        class: index === 0 ? "edge parent" : "edge adjacent",
      });
      root.append(line);
    });
  }
  for (const shard of shards) {
    const { x, y } = place.get(shard.ShardId);
    const group = svg("g", { class: `shard ${shard.Open ? "open" : "closed"}`, "data-shard": shard.ShardId });
    group.append(svg("rect", { x, y, width: NODE_WIDTH, height: NODE_HEIGHT, rx: 6 }));
    group.append(svg("text", { x: x + 8, y: y + 18 }, shard.ShardId));
    const rate = `${formatNumber(perSecond[shard.ShardId] ?? 0)} rec/s · ${formatNumber(shard.RecordsWritten)} total`;
    group.append(svg("text", { x: x + 8, y: y + 36, class: "rate" }, `${shard.Open ? "open" : "closed"} · ${rate}`));
    root.append(group);
  }
  return root;
}

function shardsTab(body, name) {
  const treeBox = h("div", { class: "tree" }, "Loading…");
  const age = h("p", { id: "iterator-age", class: "muted" });
  fill(
    body,
    h("h2", {}, "Shards"),
    h("p", { class: "muted" }, "Solid lines: parent shard. Dashed: adjacent parent (a merge). Rates are records written per second."),
    age,
    treeBox,
  );
  let previous = null;
  return every(
    1000,
    async () => {
      const [{ Shards: shards }, [samples]] = await Promise.all([
        consoleGet("shards", [["StreamName", name]]).then(JSON.parse),
        readMetrics(),
      ]);
      const at = performance.now();
      const perSecond = {};
      if (previous) {
        const seconds = (at - previous.at) / 1000;
        for (const shard of shards) {
          const before = previous.written[shard.ShardId];
          if (before !== undefined && seconds > 0) perSecond[shard.ShardId] = Math.max(0, (shard.RecordsWritten - before) / seconds);
        }
      }
      previous = { at, written: Object.fromEntries(shards.map((shard) => [shard.ShardId, shard.RecordsWritten])) };
      fill(treeBox, shardTree(shards, perSecond));
      const ages = byLabel(samples, "kinesis_get_records_iterator_age_milliseconds", "stream");
      age.textContent =
        name in ages
          ? `Iterator age (GetRecords.IteratorAgeMilliseconds, latest read): ${formatNumber(ages[name])} ms`
          : "Iterator age: no GetRecords reads yet.";
    },
    (error) => fill(treeBox, errorBox(error)),
  );
}

function putTab(body, name) {
  const key = h("input", { id: "put-key", value: "console", required: true, maxlength: 256 });
  const data = h("textarea", { id: "put-data", rows: 4, placeholder: "record data (text; sent as UTF-8)" });
  const result = h("p", { id: "put-result", role: "status" });
  const submit = async (event) => {
    event.preventDefault();
    result.textContent = "Putting…";
    try {
      const bytes = new TextEncoder().encode(data.value);
      const output = await kinesis("PutRecord", { StreamName: name, PartitionKey: key.value, Data: base64(bytes) });
      fill(result, `Put to ${output.ShardId} at sequence number `, h("span", { class: "mono" }, output.SequenceNumber));
    } catch (error) {
      fill(result, errorBox(error));
    }
  };
  fill(
    body,
    h("h2", {}, "Put a test record"),
    h(
      "form",
      { id: "put-form", onsubmit: submit },
      h("label", {}, "Partition key", key),
      h("label", {}, "Data", data),
      h("button", { type: "submit", id: "put-submit" }, "PutRecord"),
    ),
    result,
  );
  return () => {};
}

function base64(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

function consumersTab(body, name) {
  const list = h("div", { id: "consumers" }, "Loading…");
  fill(body, h("h2", {}, "Enhanced fan-out consumers"), list);
  return every(
    5000,
    async () => {
      const { StreamDescriptionSummary: summary } = await kinesis("DescribeStreamSummary", { StreamName: name });
      const { Consumers: consumers } = await kinesis("ListStreamConsumers", { StreamARN: summary.StreamARN });
      if (!consumers.length) {
        fill(list, h("p", { class: "muted" }, "No consumers registered (RegisterStreamConsumer)."));
        return;
      }
      const rows = consumers.map((consumer) => [
        consumer.ConsumerName,
        consumer.ConsumerStatus,
        formatTime(consumer.ConsumerCreationTimestamp),
        h("span", { class: "mono" }, consumer.ConsumerARN),
      ]);
      fill(list, table(["Consumer", "Status", "Created", "ARN"], rows));
    },
    (error) => fill(list, errorBox(error)),
  );
}
