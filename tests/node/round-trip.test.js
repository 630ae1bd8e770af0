// Records written and read back with the unmodified AWS SDK for JavaScript v3, whose Kinesis
// client sends every call over HTTP/2 (h2c with prior knowledge for an http:// endpoint).

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";

import {
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  PutRecordsCommand,
} from "@aws-sdk/client-kinesis";

import { createStream, shardId, uniqueName, withServer } from "./support.js";

test("PutRecords then GetRecords from TRIM_HORIZON returns the records byte for byte", { timeout: 60_000 }, (t) =>
  withServer(t, {}, async (server) => {
    const client = server.client();
    try {
      const stream = uniqueName("node-round-trip");
      await createStream(client, stream, 1);
      const summary = await client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
      assert.equal(summary.StreamDescriptionSummary.StreamStatus, "ACTIVE");
      assert.equal(summary.StreamDescriptionSummary.OpenShardCount, 1);

      // Every byte value, a lone NUL, UTF-8 text and 64 KiB of random bytes: nothing may be decoded as text.
      const payloads = [
        Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
        Buffer.from([0]),
        Buffer.from("héllo, wörld ✓", "utf8"),
        randomBytes(64 * 1024),
        ...Array.from({ length: 6 }, (_, i) => randomBytes(1 + i * 37)),
      ];
      assert.equal(payloads.length, 10);
      const put = await client.send(
        new PutRecordsCommand({
          StreamName: stream,
          Records: payloads.map((data, i) => ({ Data: data, PartitionKey: `key-${i}` })),
        }),
      );
      assert.equal(put.FailedRecordCount ?? 0, 0);
      assert.equal(put.Records.length, 10);
      for (const entry of put.Records) assert.equal(entry.ShardId, shardId(0));

      const { ShardIterator } = await client.send(
        new GetShardIteratorCommand({ StreamName: stream, ShardId: shardId(0), ShardIteratorType: "TRIM_HORIZON" }),
      );
      const got = await client.send(new GetRecordsCommand({ ShardIterator }));
      assert.equal(got.Records.length, 10);
      got.Records.forEach((record, i) => {
        assert.ok(Buffer.from(record.Data).equals(payloads[i]), `record ${i}: data differs`);
        assert.equal(record.PartitionKey, `key-${i}`);
        assert.equal(record.SequenceNumber, put.Records[i].SequenceNumber);
        assert.ok(record.ApproximateArrivalTimestamp instanceof Date);
      });
      assert.equal(got.MillisBehindLatest, 0);
      assert.ok(got.NextShardIterator, "an open shard has a next iterator");
    } finally {
      client.destroy();
    }
  }),
);
