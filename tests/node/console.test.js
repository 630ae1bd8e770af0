// The web console in headless Chromium (Debian's `chromium`, driven by `playwright-core`), against
// the real binary: every page clicked through, a chart that moves while records flow, the record
// browser, the put form, and --auth sign-in (a wrong secret refused). Screenshots of each page
// are kept under $TIDELINE_ARTIFACTS (default: the temp dir), in tideline-console-<pid>/.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { CreateDeliveryStreamCommand, FirehoseClient, PutRecordBatchCommand } from "@aws-sdk/client-firehose";
import {
  DescribeStreamSummaryCommand,
  MergeShardsCommand,
  PutRecordCommand,
  PutRecordsCommand,
  SplitShardCommand,
  waitUntilStreamExists,
} from "@aws-sdk/client-kinesis";
import { CreateEventSourceMappingCommand, CreateFunctionCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { chromium } from "playwright-core";

import { CHROMIUM_ARGS } from "../chromium-args.mjs";
import { createStream, registerActiveConsumer, shardId, uniqueName, withServer } from "./support.js";

const CHROMIUM = "/usr/bin/chromium";
const SKIP = !existsSync(CHROMIUM) && `Chromium not found at ${CHROMIUM} (scripts/test installs Debian's chromium with apt-get)`;
const ARTIFACTS = join(process.env.TIDELINE_ARTIFACTS ?? tmpdir(), `tideline-console-${process.pid}`);
const TIMEOUT_MS = 20_000;
/** Half the 128-bit hash key space: where a one-shard stream splits evenly. */
const MIDDLE_HASH_KEY = (1n << 127n).toString();
const ROLE_ARN = "arn:aws:iam::000000000000:role/console-test";
/** An empty zip archive (just its end-of-central-directory record): a function that never runs here. */
const EMPTY_ZIP = Uint8Array.from([0x50, 0x4b, 0x05, 0x06, ...new Array(18).fill(0)]);

/** Chromium with a fresh, empty profile; `body(page)` runs in it, and the profile is removed after. */
async function withBrowser(body) {
  const profile = mkdtempSync(join(tmpdir(), "tideline-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: ["--headless", ...CHROMIUM_ARGS],
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(TIMEOUT_MS);
    const errors = [];
    page.on("pageerror", (error) => errors.push(error));
    await body(page);
    assert.deepEqual(errors, [], "the console's scripts threw");
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** PutRecords batches every 100 ms until `stop()` or 60 s: the load is bounded either way. */
function startProducer(client, stream) {
  let running = true;
  let sent = 0;
  const done = (async () => {
    const deadline = Date.now() + 60_000;
    while (running && Date.now() < deadline) {
      const records = Array.from({ length: 20 }, (_, i) => ({
        PartitionKey: `key-${sent + i}`,
        Data: new TextEncoder().encode(JSON.stringify({ n: sent + i, text: `record ${sent + i}` })),
      }));
      await client.send(new PutRecordsCommand({ StreamName: stream, Records: records }));
      sent += records.length;
      await sleep(100);
    }
  })();
  return {
    sent: () => sent,
    async stop() {
      running = false;
      await done;
    },
  };
}

const text = (page, selector) => page.locator(selector).innerText();

test("the console: overview chart, shard tree, records, put form, consumers, Firehose, Lambda, SQL", { skip: SKIP, timeout: 180_000 }, async (t) => {
  t.diagnostic(`screenshots: ${ARTIFACTS}`);
  console.log(`console screenshots: ${ARTIFACTS}`);
  await withServer(t, {}, async (server) => {
    const client = server.client();
    const busy = uniqueName("console-busy");
    const resharded = uniqueName("console-resharded");
    await createStream(client, busy, 2);
    await createStream(client, resharded, 1);
    // shard 0 → shards 1 and 2 → merged into shard 3 (parent 1, adjacent parent 2).
    await client.send(new SplitShardCommand({ StreamName: resharded, ShardToSplit: shardId(0), NewStartingHashKey: MIDDLE_HASH_KEY }));
    await waitUntilStreamExists({ client, maxWaitTime: 30, minDelay: 1, maxDelay: 2 }, { StreamName: resharded });
    await client.send(new MergeShardsCommand({ StreamName: resharded, ShardToMerge: shardId(1), AdjacentShardToMerge: shardId(2) }));
    await waitUntilStreamExists({ client, maxWaitTime: 30, minDelay: 1, maxDelay: 2 }, { StreamName: resharded });

    await withBrowser(async (page) => {
      // Overview: the open-server notice, both streams, and a records/s chart that moves.
      await page.goto(`${server.url}/`);
      assert.match(await text(page, "#open-banner"), /runs without --auth/);
      await page.locator(`a.stream-link:text-is("${busy}")`).waitFor();
      await page.locator(`a.stream-link:text-is("${resharded}")`).waitFor();
      const beforeRecords = new Date(Date.now() - 1000).toISOString();
      const producer = startProducer(client, busy);
      try {
        await page.waitForFunction(() => Number(document.querySelector("#chart-records")?.dataset.latest) > 0);
        await page.waitForFunction(() => Number(document.querySelector("#chart-bytes")?.dataset.latest) > 0);
        const before = await page.locator("#chart-records").evaluate((canvas) => [canvas.toDataURL(), Number(canvas.dataset.samples)]);
        await page.waitForFunction((samples) => Number(document.querySelector("#chart-records").dataset.samples) >= samples + 2, before[1]);
        const after = await page.locator("#chart-records").evaluate((canvas) => canvas.toDataURL());
        assert.notEqual(after, before[0], "the records/s chart did not change while records flowed");
        const row = page.locator("tr", { has: page.locator(`a.stream-link:text-is("${busy}")`) });
        await page.waitForFunction((name) => {
          const link = [...document.querySelectorAll("a.stream-link")].find((a) => a.textContent === name);
          const cells = link?.closest("tr")?.querySelectorAll("td");
          return cells && cells[3].textContent === "2" && Number.parseFloat(cells[5].textContent) > 0;
        }, busy);
        assert.match(await row.innerText(), /ACTIVE/);
        await screenshot(page, "1-streams");

        // The stream page: its shards with their write rates while records flow.
        await page.locator(`a.stream-link:text-is("${busy}")`).click();
        await page.locator("#shard-tree g.shard").nth(1).waitFor();
        await page.waitForFunction(() =>
          [...document.querySelectorAll("#shard-tree text.rate")].some((t) => /[1-9][\d.]*k? rec\/s/.test(t.textContent)),
        );
        assert.match(await text(page, "#stream-summary"), /Open shards\s*2/);
        await screenshot(page, "2-stream-shards");
      } finally {
        await producer.stop();
      }
      assert.ok(producer.sent() > 0);

      // The record browser: from TRIM_HORIZON, as JSON, then hex, then the next page.
      await page.locator("#tab-records").click();
      await page.locator(`#records-shard option[value="${shardId(0)}"]`).waitFor({ state: "attached" });
      await page.selectOption("#records-shard", shardId(0));
      await page.selectOption("#records-position", "TRIM_HORIZON");
      await page.selectOption("#records-format", "json");
      await page.locator("#records-read").click();
      await page.locator("#records-table tbody tr").nth(24).waitFor();
      assert.match(await text(page, "#records-table tbody tr:first-child pre.data"), /"text": "record \d+"/);
      await page.selectOption("#records-format", "hex");
      assert.match(await text(page, "#records-table tbody tr:first-child pre.data"), /^7b 22 6e 22 3a/);
      await page.selectOption("#records-format", "text");
      const first = await text(page, "#records-table tbody tr:first-child");
      await page.locator("#records-next").click();
      await page.locator("#records-table tbody tr").nth(25).waitFor();
      assert.match(await text(page, "#records-status"), /records shown/);
      await screenshot(page, "3-records");
      // AT_TIMESTAMP before the first put starts at the same record as TRIM_HORIZON.
      await page.selectOption("#records-position", "AT_TIMESTAMP");
      await page.fill("#records-at", beforeRecords);
      await page.locator("#records-read").click();
      await page.waitForFunction(() => document.querySelectorAll("#records-table tbody tr").length === 25);
      assert.equal(await text(page, "#records-table tbody tr:first-child"), first);
      // The iterator age the console's own reads reported.
      await page.locator("#tab-shards").click();
      await page.waitForFunction(() => /Iterator age \(GetRecords/.test(document.querySelector("#iterator-age")?.textContent));

      // Following live from LATEST: a record put afterwards shows up.
      await page.locator("#tab-records").click();
      await page.locator(`#records-shard option[value="${shardId(0)}"]`).waitFor({ state: "attached" });
      await page.selectOption("#records-shard", shardId(0));
      await page.selectOption("#records-position", "LATEST");
      await page.locator("#records-follow").check();
      await page.locator("#records-read").click();
      await page.waitForFunction(() => /records shown/.test(document.querySelector("#records-status")?.textContent));
      await client.send(
        new PutRecordCommand({ StreamName: busy, PartitionKey: "live", ExplicitHashKey: "0", Data: new TextEncoder().encode("followed live") }),
      );
      await page.locator('#records-table pre.data:text-is("followed live")').waitFor();

      // The put form: a record put from the page, then read back at its sequence number.
      await page.locator("#tab-put").click();
      await page.fill("#put-key", "from-the-form");
      await page.fill("#put-data", "hello from the console form");
      await page.locator("#put-submit").click();
      await page.locator("#put-result .mono").waitFor();
      const putResult = await text(page, "#put-result");
      const [, putShard, sequence] = /Put to (shardId-\d+) at sequence number (\d+)/.exec(putResult);
      await screenshot(page, "4-put");
      await page.locator("#tab-records").click();
      await page.locator(`#records-shard option[value="${putShard}"]`).waitFor({ state: "attached" });
      await page.selectOption("#records-shard", putShard);
      await page.selectOption("#records-position", "AT_SEQUENCE_NUMBER");
      await page.fill("#records-at", sequence);
      await page.locator("#records-read").click();
      await page.locator('#records-table tbody tr:first-child pre.data:text-is("hello from the console form")').waitFor();
      assert.match(await text(page, "#records-table tbody tr:first-child"), /from-the-form/);

      // Consumers.
      const { StreamDescriptionSummary: summary } = await client.send(new DescribeStreamSummaryCommand({ StreamName: busy }));
      await registerActiveConsumer(client, summary.StreamARN, "console-consumer");
      await page.locator("#tab-consumers").click();
      await page.locator('#consumers td:text-is("console-consumer")').waitFor();
      assert.match(await text(page, "#consumers"), /ACTIVE/);
      await screenshot(page, "5-consumers");

      // The resharded stream's lineage: 0 → 1, 2 (solid) → 3 (solid from 1, dashed from 2).
      await page.goto(`${server.url}/#/stream/${encodeURIComponent(resharded)}`);
      await page.locator("#shard-tree g.shard").nth(3).waitFor();
      assert.equal(await page.locator("#shard-tree g.shard.open").count(), 1);
      assert.equal(await page.locator("#shard-tree line.edge.parent").count(), 3);
      assert.equal(await page.locator("#shard-tree line.edge.adjacent").count(), 1);
      await screenshot(page, "6-lineage");

      // Firehose: a delivering stream (in-memory S3) and a failing one (nothing listens on the URL).
      const firehose = new FirehoseClient({ endpoint: server.url, region: "us-east-1", credentials: { accessKeyId: "local", secretAccessKey: "local" } });
      const delivering = uniqueName("console-s3");
      const failing = uniqueName("console-http");
      await firehose.send(
        new CreateDeliveryStreamCommand({
          DeliveryStreamName: delivering,
          DeliveryStreamType: "DirectPut",
          ExtendedS3DestinationConfiguration: { RoleARN: ROLE_ARN, BucketARN: "arn:aws:s3:::console", BufferingHints: { SizeInMBs: 1, IntervalInSeconds: 1 } },
        }),
      );
      await firehose.send(
        new CreateDeliveryStreamCommand({
          DeliveryStreamName: failing,
          DeliveryStreamType: "DirectPut",
          HttpEndpointDestinationConfiguration: {
            EndpointConfiguration: { Url: "http://127.0.0.1:9/", Name: "nobody" },
            BufferingHints: { SizeInMBs: 1, IntervalInSeconds: 0 },
            RetryOptions: { DurationInSeconds: 0 },
            S3Configuration: { RoleARN: ROLE_ARN, BucketARN: "arn:aws:s3:::console-errors" },
          },
        }),
      );
      const batch = [{ Data: new TextEncoder().encode("to firehose\n") }];
      for (const name of [delivering, failing]) await firehose.send(new PutRecordBatchCommand({ DeliveryStreamName: name, Records: batch }));
      await page.locator("#nav-firehose").click();
      const firehoseRow = (name) => page.locator("#firehose-table tr", { has: page.locator(`td:text-is("${name}")`) });
      await firehoseRow(delivering).waitFor();
      await page.waitForFunction(
        (name) => {
          const row = [...document.querySelectorAll("#firehose-table tr")].find((tr) => tr.cells[0]?.textContent === name);
          return row && /^1 records/.test(row.cells[4].textContent) && row.cells[7].textContent !== "—";
        },
        delivering,
      );
      assert.match(await firehoseRow(delivering).innerText(), /ACTIVE\s+DirectPut\s+ExtendedS3/);
      await page.locator(`#firehose-table tr:has(td:text-is("${failing}")) span.error`).waitFor({ timeout: 60_000 });
      assert.match(await firehoseRow(failing).innerText(), /HttpEndpoint/);
      await screenshot(page, "7-firehose");

      // Lambda: a mapping from the busy stream (from LATEST, after the last put: it never runs).
      const credentials = { accessKeyId: "local", secretAccessKey: "local" };
      const lambda = new LambdaClient({ endpoint: server.url, region: "us-east-1", credentials });
      await lambda.send(
        new CreateFunctionCommand({ FunctionName: "console-fn", Runtime: "python3.11", Role: ROLE_ARN, Handler: "app.handler", Code: { ZipFile: EMPTY_ZIP } }),
      );
      const mapping = await lambda.send(
        new CreateEventSourceMappingCommand({ FunctionName: "console-fn", EventSourceArn: summary.StreamARN, StartingPosition: "LATEST", BatchSize: 10 }),
      );
      await page.locator("#nav-lambda").click();
      await page.locator("#lambda-table", { hasText: mapping.UUID }).waitFor();
      assert.match(await text(page, "#lambda-table"), new RegExp(`${busy}\\s+console-fn\\s+(Creating|Enabling|Enabled)\\s+10\\s+LATEST`));
      await screenshot(page, "8-lambda");

      // The SQL placeholder.
      await page.locator("#nav-sql").click();
      assert.match(await text(page, "#sql-placeholder"), /not available in Tideline yet/);
      await screenshot(page, "9-sql");
    });
  });
});

test("the console with --auth: sign-in with a key from the credentials file; a wrong secret is refused", { skip: SKIP, timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tideline-console-auth-"));
  const credentials = join(dir, "credentials");
  writeFileSync(credentials, "[console]\naws_access_key_id = AKIDCONSOLETEST\naws_secret_access_key = console-test-secret\n");
  try {
    await withServer(t, { args: ["--auth", "--credentials", credentials] }, async (server) => {
      // HTTP/1.1: over HTTP/2 the SDK leaves `host` out of the signature, which --auth refuses.
      const client = server.client({
        credentials: { accessKeyId: "AKIDCONSOLETEST", secretAccessKey: "console-test-secret" },
        requestHandler: new NodeHttpHandler(),
      });
      const stream = uniqueName("console-auth");
      await createStream(client, stream, 1);
      await withBrowser(async (page) => {
        await page.goto(`${server.url}/`);
        await page.locator("#login-form").waitFor();
        assert.match(await text(page, "#auth-banner"), /signed/);
        // The data calls are refused without a signature, as any AWS call is.
        const unsigned = await page.evaluate(async () => {
          const response = await fetch("/console/api/metrics");
          return [response.status, await response.text()];
        });
        assert.equal(unsigned[0], 400);
        assert.match(unsigned[1], /MissingAuthenticationToken/);

        await page.fill("#login-key", "AKIDCONSOLETEST");
        await page.fill("#login-secret", "not-the-secret");
        await page.locator("#login-submit").click();
        await page.locator("#login-result .error").waitFor();
        assert.match(await text(page, "#login-result"), /InvalidSignatureException: The request signature we calculated does not match/);
        await screenshot(page, "10-auth-refused");
        assert.equal(await page.locator("a.stream-link").count(), 0);

        await page.fill("#login-secret", "console-test-secret");
        await page.locator("#login-submit").click();
        await page.locator(`a.stream-link:text-is("${stream}")`).waitFor();
        assert.match(await text(page, "#account"), /AKIDCONSOLETEST/);
        // Signed console calls work too: the metrics behind the charts, the shard tree.
        await page.waitForFunction(() => Number(document.querySelector("#chart-records")?.dataset.samples) >= 1);
        assert.equal(await text(page, "#metrics-status"), "");
        await page.locator(`a.stream-link:text-is("${stream}")`).click();
        await page.locator("#shard-tree g.shard").first().waitFor();
        await page.locator("#tab-put").click();
        await page.fill("#put-data", "signed from the browser");
        await page.locator("#put-submit").click();
        await page.locator("#put-result .mono").waitFor();
        await screenshot(page, "11-auth-signed-in");

        await page.locator("#logout").click();
        await page.locator("#login-form").waitFor();
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The console's hand-written signer, on AWS's SigV4 test suite (get-vanilla, get-vanilla-query-order-key-case
// and post-x-www-form-urlencoded): the same signatures as AWS's reference.
test("the console's SigV4 signer matches AWS's test suite", async () => {
  const { sign } = await import("../../crates/console/assets/sigv4.js");
  const common = {
    host: "example.amazonaws.com",
    region: "us-east-1",
    service: "service",
    credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
    now: new Date("2015-08-30T12:36:00Z"),
  };
  const signature = async (request) => /Signature=(\w+)$/.exec((await sign({ ...common, ...request })).authorization)[1];
  assert.equal(await signature({ method: "GET", path: "/" }), "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  assert.equal(
    await signature({ method: "GET", path: "/", query: [["Param2", "value2"], ["Param1", "value1"]] }),
    "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
  );
  assert.equal(
    await signature({ method: "POST", path: "/", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: "Param1=value1" }),
    "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
  );
});
