// The console's one way to the server: the real AWS APIs (Kinesis and Firehose JSON 1.1, Lambda
// REST-JSON) and the console's own data calls, signed with SigV4: with the access key the user
// typed when the server runs with --auth (kept in sessionStorage, gone with the tab), with a
// stand-in key when it is open.

import { amzDate, canonicalQuery, sign } from "./sigv4.js";

const CREDENTIALS_KEY = "tideline.console.credentials";

/** An error answer, with AWS's error type and message. */
export class AwsError extends Error {
  constructor(type, message, status) {
    super(message ? `${type}: ${message}` : type);
    this.type = type;
    this.status = status;
  }
}

let config = { region: "us-east-1", auth: false };

export function configure(pageConfig) {
  config = pageConfig;
}

export function serverConfig() {
  return config;
}

export function credentials() {
  const stored = sessionStorage.getItem(CREDENTIALS_KEY);
  return stored ? JSON.parse(stored) : null;
}

export function saveCredentials(value) {
  sessionStorage.setItem(CREDENTIALS_KEY, JSON.stringify(value));
}

export function forgetCredentials() {
  sessionStorage.removeItem(CREDENTIALS_KEY);
}

/**
 * Every AWS call carries a signature, even to a server that checks none (it answers a call
 * without one MissingAuthenticationTokenException, as AWS does); without --auth the console signs
 * with these.
 */
const OPEN_SERVER_KEYS = { accessKeyId: "tideline-console", secretAccessKey: "open-server" };

/**
 * A well-formed but unsigned Authorization, for an open server reached where the browser offers
 * no WebCrypto (plain http to a host other than localhost): the server checks only its shape.
 */
function placeholderSignature(service) {
  const date = amzDate(new Date());
  const scope = `${date.slice(0, 8)}/${config.region}/${service}/aws4_request`;
  return {
    "x-amz-date": date,
    authorization: `AWS4-HMAC-SHA256 Credential=${OPEN_SERVER_KEYS.accessKeyId}/${scope}, SignedHeaders=host;x-amz-date, Signature=${"0".repeat(64)}`,
  };
}

/** One request; answers the body text, or throws the AwsError the server answered. */
async function send({ service, method = "POST", path = "/", query = [], headers = {}, body = "", signWith }) {
  const keys = config.auth ? signWith ?? credentials() : OPEN_SERVER_KEYS;
  if (!keys) throw new AwsError("MissingAuthenticationToken", "Sign in with an access key to use the console.");
  let sent;
  if (globalThis.crypto?.subtle) {
    const signing = { method, path, query, headers, body, host: location.host, region: config.region, service };
    sent = await sign({ ...signing, credentials: keys });
  } else if (!config.auth) {
    sent = { ...headers, ...placeholderSignature(service) };
  } else {
    throw new AwsError("InsecureContext", "Signing needs WebCrypto: open the console over https or on localhost.");
  }
  const url = query.length ? `${path}?${canonicalQuery(query)}` : path;
  const response = await fetch(url, { method, headers: sent, body: method === "GET" ? undefined : body });
  const text = await response.text();
  if (!response.ok) {
    let parsed = {};
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON (a proxy's page, say): the status says enough.
    }
    const type = (parsed.__type || response.headers.get("x-amzn-ErrorType") || `HTTP ${response.status}`).split("#").pop();
    throw new AwsError(type, parsed.message ?? parsed.Message ?? "", response.status);
  }
  return text;
}

async function json11(service, prefix, operation, input, signWith) {
  const headers = { "content-type": "application/x-amz-json-1.1", "x-amz-target": `${prefix}.${operation}` };
  const text = await send({ service, headers, body: JSON.stringify(input ?? {}), signWith });
  return text ? JSON.parse(text) : {};
}

/** A Kinesis Data Streams operation (`ListStreams`, `GetRecords`, …). */
export function kinesis(operation, input, signWith) {
  return json11("kinesis", "Kinesis_20131202", operation, input, signWith);
}

/** A Firehose operation (`ListDeliveryStreams`, `DescribeDeliveryStream`). */
export function firehose(operation, input) {
  return json11("firehose", "Firehose_20150804", operation, input);
}

/** A Lambda REST-JSON GET (`/2015-03-31/event-source-mappings/`). */
export async function lambdaGet(path, query = []) {
  return JSON.parse(await send({ service: "lambda", method: "GET", path, query }));
}

/** The console's own data calls, signed as Kinesis calls. */
export function consoleGet(path, query = []) {
  return send({ service: "kinesis", method: "GET", path: `/console/api/${path}`, query });
}
