// The streams overview: every stream with its status, mode, shards and retention, and live
// incoming records/s and bytes/s (from the server's IncomingRecords/IncomingBytes counters).

import { kinesis } from "./aws.js";
import { LineChart, formatNumber } from "./chart.js";
import { errorBox, every, fill, h, table } from "./dom.js";
import { byLabel, rates, readMetrics } from "./metrics.js";

/** ListStreams pages read at most: the console shows the first 1,000 streams. */
const MAX_PAGES = 10;

export async function listStreamSummaries() {
  const summaries = [];
  let input = { Limit: 100 };
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const output = await kinesis("ListStreams", input);
    summaries.push(...(output.StreamSummaries ?? []));
    if (!output.HasMoreStreams || !output.NextToken) break;
    input = { NextToken: output.NextToken };
  }
  return summaries;
}

export function streamsPage(main) {
  const recordsCanvas = h("canvas", { id: "chart-records", class: "chart" });
  const bytesCanvas = h("canvas", { id: "chart-bytes", class: "chart" });
  const tableBox = h("div", { id: "streams-table" }, "Loading…");
  const status = h("p", { class: "muted", id: "metrics-status" });
  fill(
    main,
    h("h1", {}, "Streams"),
    h(
      "div",
      { class: "charts" },
      h("figure", {}, h("figcaption", {}, "Incoming records/s"), recordsCanvas),
      h("figure", {}, h("figcaption", {}, "Incoming bytes/s"), bytesCanvas),
    ),
    status,
    tableBox,
  );
  const recordsChart = new LineChart(recordsCanvas);
  const bytesChart = new LineChart(bytesCanvas, { unit: "B" });
  let streams = null;
  let details = {};
  let now = { records: {}, bytes: {} };
  let previous = null;

  const render = () => {
    if (streams === null) return;
    if (streams.length === 0) {
      fill(tableBox, h("p", { class: "muted" }, "No streams yet. Create one with the AWS CLI or an SDK."));
      return;
    }
    const rows = streams.map((summary) => {
      const name = summary.StreamName;
      const detail = details[name] ?? {};
      return [
        h("a", { href: `#/stream/${encodeURIComponent(name)}`, class: "stream-link" }, name),
        summary.StreamStatus,
        summary.StreamModeDetails?.StreamMode ?? "PROVISIONED",
        detail.OpenShardCount ?? "…",
        detail.RetentionPeriodHours ? `${detail.RetentionPeriodHours} h` : "…",
        formatNumber(now.records[name] ?? 0),
        `${formatNumber(now.bytes[name] ?? 0)}B`,
      ];
    });
    fill(tableBox, table(["Stream", "Status", "Mode", "Open shards", "Retention", "Records/s", "Bytes/s"], rows));
  };

  const stopList = every(
    5000,
    async () => {
      streams = await listStreamSummaries();
      const described = await Promise.all(
        streams.slice(0, 50).map((summary) =>
          kinesis("DescribeStreamSummary", { StreamName: summary.StreamName }).then(
            (output) => [summary.StreamName, output.StreamDescriptionSummary],
            () => [summary.StreamName, {}],
          ),
        ),
      );
      details = Object.fromEntries(described);
      render();
    },
    (error) => fill(tableBox, errorBox(error)),
  );
  const stopMetrics = every(
    1000,
    async () => {
      const [samples, at] = await readMetrics();
      const counters = {
        records: byLabel(samples, "kinesis_incoming_records_total", "stream"),
        bytes: byLabel(samples, "kinesis_incoming_bytes_total", "stream"),
      };
      if (previous) {
        const seconds = (at - previous.at) / 1000;
        now = { records: rates(counters.records, previous.records, seconds), bytes: rates(counters.bytes, previous.bytes, seconds) };
        recordsChart.push(now.records);
        bytesChart.push(now.bytes);
        render();
      }
      previous = { ...counters, at };
      status.textContent = "";
    },
    (error) => (status.textContent = `Metrics unavailable: ${error.message}`),
  );
  return () => {
    stopList();
    stopMetrics();
  };
}
