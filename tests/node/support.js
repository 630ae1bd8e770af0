// Test support: the real `tideline` binary on a free loopback port, a Kinesis client from the
// unmodified AWS SDK for JavaScript v3 pointed at it, and a loopback TCP relay that records how
// each client connection opens (to prove which HTTP version went over the wire).

import { spawn } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";

import {
  CreateStreamCommand,
  DescribeStreamConsumerCommand,
  KinesisClient,
  RegisterStreamConsumerCommand,
  waitUntilStreamExists,
} from "@aws-sdk/client-kinesis";

const LISTENING = /^tideline listening on (http:\/\/127\.0\.0\.1:\d+)$/;
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const LOG_LIMIT = 1 << 20;

/** The first bytes a client sends on an HTTP/2 connection with prior knowledge (RFC 9113 §3.4). */
export const HTTP2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

export function shardId(index) {
  return `shardId-${String(index).padStart(12, "0")}`;
}

let counter = 0;
export function uniqueName(prefix) {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

/** Resolves with `promise`, or rejects after `ms` with an error naming what was awaited. */
export async function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Starts `$TIDELINE_BIN serve --listen 127.0.0.1:0 --in-memory` and waits for its listening line.
 * `env` is added to the server's environment (e.g. `{ TIDELINE_LOG: "debug" }`).
 */
export async function startServer({ env = {}, args = [] } = {}) {
  const binary = process.env.TIDELINE_BIN;
  if (!binary) {
    throw new Error("TIDELINE_BIN is not set: point it at the tideline binary (scripts/test does)");
  }
  const child = spawn(binary, ["serve", "--listen", "127.0.0.1:0", "--in-memory", ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text) => {
    log += text;
    if (log.length > LOG_LIMIT) log = log.slice(-LOG_LIMIT / 2);
  });
  const exited = once(child, "exit");
  const lines = createInterface({ input: child.stdout });
  const listening = (async () => {
    for await (const line of lines) {
      const match = LISTENING.exec(line.trim());
      if (match) return match[1];
    }
    const [code, signal] = await exited;
    throw new Error(`tideline exited (code ${code}, signal ${signal}) before listening; its log:\n${log}`);
  })();
  let url;
  try {
    url = await within(START_TIMEOUT_MS, "tideline's listening line", listening);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  const server = {
    url,
    port: Number(new URL(url).port),
    log: () => log,
    /** A client from the unmodified SDK, as a user would build it; `endpoint` overrides the URL. */
    client(options = {}) {
      return new KinesisClient({
        endpoint: url,
        region: "us-east-1",
        credentials: { accessKeyId: "local", secretAccessKey: "local" },
        ...options,
      });
    },
    /** SIGTERM, then SIGKILL if the server has not stopped within a few seconds. */
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      try {
        await within(STOP_TIMEOUT_MS, "tideline to stop on SIGTERM", exited);
      } catch {
        child.kill("SIGKILL");
        await exited;
      }
    },
  };
  return server;
}

/**
 * Runs `body(server)` against a fresh server and always stops it; if `body` fails, the tail of
 * the server's log is attached to test `t` as diagnostics.
 */
export async function withServer(t, options, body) {
  const server = await startServer(options);
  try {
    return await body(server);
  } catch (error) {
    t.diagnostic("tideline log (tail):");
    for (const line of server.log().slice(-8_000).trimEnd().split("\n")) t.diagnostic(line);
    throw error;
  } finally {
    await server.stop();
  }
}

/**
 * A loopback TCP relay to `port` that records the first 24 bytes of every client connection, so
 * a test can tell an HTTP/2 prior-knowledge connection (which opens with `HTTP2_PREFACE`) from
 * an HTTP/1.1 one (which opens with a request line).
 */
export async function startRelay(port) {
  const openings = [];
  const sockets = new Set();
  const relay = net.createServer((downstream) => {
    const upstream = net.connect(port, "127.0.0.1");
    sockets.add(downstream).add(upstream);
    let head = Buffer.alloc(0);
    const record = (chunk) => {
      head = Buffer.concat([head, chunk]);
      if (head.length >= HTTP2_PREFACE.length) {
        openings.push(head.subarray(0, HTTP2_PREFACE.length).toString("latin1"));
        downstream.off("data", record);
      }
    };
    downstream.on("data", record);
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    const close = () => {
      downstream.destroy();
      upstream.destroy();
      sockets.delete(downstream);
      sockets.delete(upstream);
    };
    downstream.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  relay.listen(0, "127.0.0.1");
  await once(relay, "listening");
  return {
    url: `http://127.0.0.1:${relay.address().port}`,
    openings,
    async close() {
      for (const socket of sockets) socket.destroy();
      relay.close();
      await once(relay, "close");
    },
  };
}

/** CreateStream and wait (bounded) until it is ACTIVE. */
export async function createStream(client, name, shardCount) {
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shardCount }));
  await waitUntilStreamExists({ client, maxWaitTime: 30, minDelay: 1, maxDelay: 2 }, { StreamName: name });
}

/** RegisterStreamConsumer, then poll DescribeStreamConsumer (bounded) until it is ACTIVE. */
export async function registerActiveConsumer(client, streamArn, name) {
  const registered = await client.send(new RegisterStreamConsumerCommand({ StreamARN: streamArn, ConsumerName: name }));
  const arn = registered.Consumer.ConsumerARN;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const described = await client.send(new DescribeStreamConsumerCommand({ ConsumerARN: arn }));
    const status = described.ConsumerDescription.ConsumerStatus;
    if (status === "ACTIVE") return arn;
    if (Date.now() > deadline) throw new Error(`consumer ${arn} still ${status} after 30 s`);
    await sleep(200);
  }
}

/**
 * Reads one event from a SubscribeToShard event stream's iterator within `ms`. Returns the
 * `SubscribeToShardEvent`, or `null` when the stream ended; any other union member is a failure.
 */
export async function nextEvent(events, ms = 10_000) {
  const { value, done } = await within(ms, "a SubscribeToShard event", events.next());
  if (done) return null;
  if (!value.SubscribeToShardEvent) {
    throw new Error(`unexpected event-stream member: ${JSON.stringify(value)}`);
  }
  return value.SubscribeToShardEvent;
}
