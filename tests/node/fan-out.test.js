// Enhanced fan-out with the unmodified AWS SDK for JavaScript v3: SubscribeToShard's event stream
// over HTTP/2 (the SDK's default NodeHttp2Handler; h2c with prior knowledge for http://),
// including records pushed while subscribed and the end of a subscription at a shard split.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DescribeStreamSummaryCommand,
  PutRecordCommand,
  PutRecordsCommand,
  SplitShardCommand,
  SubscribeToShardCommand,
} from "@aws-sdk/client-kinesis";

import {
  createStream,
  HTTP2_PREFACE,
  nextEvent,
  registerActiveConsumer,
  shardId,
  startRelay,
  uniqueName,
  withServer,
} from "./support.js";

async function streamArn(client, stream) {
  const summary = await client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
  return summary.StreamDescriptionSummary.StreamARN;
}

/** Opens a subscription; returns its event iterator and the AbortController that ends it. */
async function subscribe(client, consumerArn, shard) {
  const abort = new AbortController();
  const response = await client.send(
    new SubscribeToShardCommand({
      ConsumerARN: consumerArn,
      ShardId: shard,
      StartingPosition: { Type: "TRIM_HORIZON" },
    }),
    { abortSignal: abort.signal },
  );
  assert.equal(response.$metadata.httpStatusCode, 200);
  return { events: response.EventStream[Symbol.asyncIterator](), abort };
}

/** Reads events until `want` records arrived (heartbeats carry none); returns them and the last event. */
async function collectRecords(events, want, ms) {
  const records = [];
  let last;
  const deadline = Date.now() + ms;
  while (records.length < want) {
    const event = await nextEvent(events, Math.max(1, deadline - Date.now()));
    assert.ok(event, `the event stream ended after ${records.length} of ${want} records`);
    records.push(...event.Records);
    if (event.Records.length > 0) last = event;
  }
  return { records, last };
}

const PUSH = "SubscribeToShard over HTTP/2 pushes earlier records, then new ones on the same subscription";
test(PUSH, { timeout: 60_000 }, (t) =>
  withServer(t, {}, async (server) => {
    // All traffic goes through a relay that records how each connection opens.
    const relay = await startRelay(server.port);
    const client = server.client({ endpoint: relay.url });
    let subscription;
    try {
      // The SDK's own default for Kinesis in Node; nothing here chooses it.
      assert.equal(client.config.requestHandler.constructor.name, "NodeHttp2Handler");

      const stream = uniqueName("node-fan-out");
      await createStream(client, stream, 1);
      const arn = await streamArn(client, stream);
      const before = ["first", "second", "third"].map((text) => Buffer.from(text));
      const put = await client.send(
        new PutRecordsCommand({ StreamName: stream, Records: before.map((Data) => ({ Data, PartitionKey: "k" })) }),
      );
      assert.equal(put.FailedRecordCount ?? 0, 0);
      const consumerArn = await registerActiveConsumer(client, arn, "node-reader");

      subscription = await subscribe(client, consumerArn, shardId(0));
      const early = await collectRecords(subscription.events, before.length, 10_000);
      assert.deepEqual(
        early.records.map((r) => Buffer.from(r.Data).toString()),
        before.map((b) => b.toString()),
      );
      assert.deepEqual(
        early.records.map((r) => r.SequenceNumber),
        put.Records.map((r) => r.SequenceNumber),
      );
      assert.equal(early.last.ContinuationSequenceNumber, put.Records.at(-1).SequenceNumber);

      // Written while subscribed: pushed on the same subscription within 4 s, i.e. before the
      // server's next 5 s heartbeat event would have carried it.
      const late = await client.send(
        new PutRecordCommand({ StreamName: stream, PartitionKey: "k", Data: Buffer.from("late") }),
      );
      const pushed = await collectRecords(subscription.events, 1, 4_000);
      assert.deepEqual(pushed.records.map((r) => Buffer.from(r.Data).toString()), ["late"]);
      assert.equal(pushed.records[0].SequenceNumber, late.SequenceNumber);
      assert.equal(pushed.last.ContinuationSequenceNumber, late.SequenceNumber, "continuation = last record's number");

      // Every connection the SDK opened began with the HTTP/2 connection preface: h2c with prior
      // knowledge, which an HTTP/1.1-only server would have refused.
      assert.ok(relay.openings.length >= 6, `connections seen: ${relay.openings.length}`);
      for (const opening of relay.openings) assert.equal(opening, HTTP2_PREFACE);
    } finally {
      subscription?.abort.abort();
      client.destroy();
      await relay.close();
    }
  }),
);

test("a subscription reports the child shards after a split, then ends", { timeout: 60_000 }, (t) =>
  withServer(t, {}, async (server) => {
    const client = server.client();
    let subscription;
    try {
      const stream = uniqueName("node-fan-out-split");
      await createStream(client, stream, 1);
      const arn = await streamArn(client, stream);
      await client.send(
        new PutRecordCommand({ StreamName: stream, PartitionKey: "before", Data: Buffer.from("before-split") }),
      );
      const consumerArn = await registerActiveConsumer(client, arn, "node-lineage");

      subscription = await subscribe(client, consumerArn, shardId(0));
      const first = await collectRecords(subscription.events, 1, 10_000);
      assert.deepEqual(first.records.map((r) => Buffer.from(r.Data).toString()), ["before-split"]);
      assert.ok(!first.last.ChildShards?.length, "no child shards while the shard is open");

      await client.send(
        new SplitShardCommand({
          StreamName: stream,
          ShardToSplit: shardId(0),
          NewStartingHashKey: (2n ** 127n).toString(),
        }),
      );
      let children;
      const deadline = Date.now() + 10_000;
      while (!children) {
        const event = await nextEvent(subscription.events, Math.max(1, deadline - Date.now()));
        assert.ok(event, "the event stream ended without reporting child shards");
        if (event.ChildShards?.length) children = event.ChildShards;
      }
      assert.deepEqual(children.map((c) => c.ShardId).sort(), [shardId(1), shardId(2)]);
      for (const child of children) assert.deepEqual(child.ParentShards, [shardId(0)]);
      const ranges = Object.fromEntries(children.map((c) => [c.ShardId, c.HashKeyRange]));
      assert.deepEqual(ranges[shardId(1)], {
        StartingHashKey: "0",
        EndingHashKey: (2n ** 127n - 1n).toString(),
      });
      assert.deepEqual(ranges[shardId(2)], {
        StartingHashKey: (2n ** 127n).toString(),
        EndingHashKey: (2n ** 128n - 1n).toString(),
      });

      const end = await nextEvent(subscription.events, 10_000);
      assert.equal(end, null, "the event stream ends at the end of a closed shard");
    } finally {
      subscription?.abort.abort();
      client.destroy();
    }
  }),
);
