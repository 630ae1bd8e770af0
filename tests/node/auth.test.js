// `--auth` with the unmodified AWS SDK for JavaScript v3. Over HTTP/2 (its default for Kinesis)
// the SDK signs the `:authority` pseudo-header instead of `host`, as AWS accepts.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";

import { ListStreamsCommand, PutRecordCommand } from "@aws-sdk/client-kinesis";

import { createStream, uniqueName, withServer } from "./support.js";

const KEY = { accessKeyId: "AKIDNODEAUTHTEST", secretAccessKey: "node-auth-test-secret" };

test("with --auth, HTTP/2 requests signed over :authority are verified and a wrong secret is refused", { timeout: 60_000 }, (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), "tideline-node-auth-"));
  const credentials = path.join(dir, "credentials");
  writeFileSync(
    credentials,
    `[default]\naws_access_key_id = ${KEY.accessKeyId}\naws_secret_access_key = ${KEY.secretAccessKey}\n`,
  );
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return withServer(t, { args: ["--auth", "--credentials", credentials] }, async (server) => {
    const client = server.client({ credentials: KEY });
    const wrong = server.client({ credentials: { ...KEY, secretAccessKey: "not-the-secret" }, maxAttempts: 1 });
    try {
      assert.equal(client.config.requestHandler.constructor.name, "NodeHttp2Handler");
      const stream = uniqueName("node-auth");
      await createStream(client, stream, 1);
      const put = await client.send(new PutRecordCommand({ StreamName: stream, Data: Buffer.from("signed"), PartitionKey: "k" }));
      assert.equal(put.ShardId, "shardId-000000000000");
      const listed = await client.send(new ListStreamsCommand({}));
      assert.ok(listed.StreamNames.includes(stream));

      await assert.rejects(wrong.send(new ListStreamsCommand({})), (error) => {
        assert.equal(error.name, "InvalidSignatureException");
        assert.match(error.message, /signature we calculated does not match/);
        return true;
      });
    } finally {
      client.destroy();
      wrong.destroy();
    }
  });
});
