// The other services' pages: Firehose delivery streams (DescribeDeliveryStream plus the delivery
// metrics), Lambda event-source mappings, and the placeholder for SQL jobs.

import { firehose, lambdaGet } from "./aws.js";
import { formatNumber } from "./chart.js";
import { errorBox, every, fill, formatTime, h, table } from "./dom.js";
import { readMetrics } from "./metrics.js";

function sum(samples, name, predicate) {
  return samples.filter((s) => s.name === name && predicate(s.labels)).reduce((total, s) => total + s.value, 0);
}

export function firehosePage(main) {
  const list = h("div", { id: "firehose" }, "Loading…");
  fill(
    main,
    h("h1", {}, "Firehose delivery streams"),
    h(
      "p",
      { class: "muted" },
      "Not yet delivered ≈ bytes taken in minus bytes delivered (processing and compression change sizes). ",
      "Last delivery: when this page saw the delivered-records counter grow.",
    ),
    list,
  );
  const lastDelivery = {};
  const delivered = {};
  return every(
    2000,
    async () => {
      const names = [];
      let input = {};
      for (let page = 0; page < 10; page += 1) {
        const output = await firehose("ListDeliveryStreams", { Limit: 100, ...input });
        names.push(...output.DeliveryStreamNames);
        if (!output.HasMoreDeliveryStreams || names.length === 0) break;
        input = { ExclusiveStartDeliveryStreamName: names[names.length - 1] };
      }
      if (!names.length) {
        fill(list, h("p", { class: "muted" }, "No delivery streams (CreateDeliveryStream)."));
        return;
      }
      const [descriptions, [samples]] = await Promise.all([
        Promise.all(names.map((name) => firehose("DescribeDeliveryStream", { DeliveryStreamName: name }))),
        readMetrics(),
      ]);
      const rows = descriptions.map(({ DeliveryStreamDescription: d }) => {
        const name = d.DeliveryStreamName;
        const mine = (labels) => labels.delivery_stream === name;
        const taken =
          sum(samples, "firehose_incoming_bytes_total", mine) + sum(samples, "firehose_kinesis_read_bytes_total", mine);
        const deliveredBytes = sum(samples, "firehose_delivery_bytes_total", mine);
        const deliveredRecords = sum(samples, "firehose_delivery_records_total", mine);
        if (deliveredRecords > (delivered[name] ?? 0)) lastDelivery[name] = Date.now();
        delivered[name] = deliveredRecords;
        const failures = sum(samples, "firehose_delivery_attempts_total", (l) => mine(l) && l.outcome === "failure");
        const freshness = sum(samples, "firehose_delivery_data_freshness_seconds", mine);
        // An ExtendedS3 destination is also described as S3 (as AWS does): the first key names it.
        const destination = Object.keys(d.Destinations?.[0] ?? {})
          .find((key) => key.endsWith("DestinationDescription"))
          ?.replace(/DestinationDescription$/, "");
        const failure = d.FailureDescription;
        return [
          name,
          d.DeliveryStreamStatus,
          d.DeliveryStreamType,
          destination || "—",
          `${formatNumber(deliveredRecords)} records / ${formatNumber(deliveredBytes)}B`,
          `${formatNumber(Math.max(0, taken - deliveredBytes))}B`,
          `${freshness} s`,
          lastDelivery[name] ? formatTime(lastDelivery[name]) : "—",
          `${failures}`,
          failure ? h("span", { class: "error" }, `${failure.Type}: ${failure.Details}`) : "—",
        ];
      });
      const headings = [
        "Delivery stream",
        "Status",
        "Source",
        "Destination",
        "Delivered",
        "Not yet delivered",
        "Data freshness",
        "Last delivery",
        "Failed attempts",
        "Failure description",
      ];
      fill(list, table(headings, rows, { id: "firehose-table" }));
    },
    (error) => fill(list, errorBox(error)),
  );
}

export function lambdaPage(main) {
  const list = h("div", { id: "lambda" }, "Loading…");
  fill(main, h("h1", {}, "Lambda event-source mappings"), list);
  return every(
    5000,
    async () => {
      const { EventSourceMappings: mappings } = await lambdaGet("/2015-03-31/event-source-mappings/");
      if (!mappings?.length) {
        fill(list, h("p", { class: "muted" }, "No event-source mappings (CreateEventSourceMapping)."));
        return;
      }
      const rows = mappings.map((m) => [
        h("span", { class: "mono" }, m.UUID),
        m.EventSourceArn?.split("/").pop() ?? "—",
        m.FunctionArn?.split(":").pop() ?? "—",
        m.State,
        m.BatchSize ?? "—",
        m.StartingPosition ?? "—",
        m.LastProcessingResult ?? "—",
        formatTime(m.LastModified),
      ]);
      const headings = ["UUID", "Stream", "Function", "State", "Batch size", "Start", "Last result", "Modified"];
      fill(list, table(headings, rows, { id: "lambda-table" }));
    },
    (error) => fill(list, errorBox(error)),
  );
}

export function sqlPage(main) {
  fill(
    main,
    h("h1", {}, "SQL jobs"),
    h(
      "p",
      { id: "sql-placeholder" },
      "SQL analytics jobs are not available in Tideline yet. When they land, this page will list them.",
    ),
  );
  return () => {};
}
