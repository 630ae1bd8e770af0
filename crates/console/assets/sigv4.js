// AWS Signature Version 4 for the console's requests, with WebCrypto (crypto.subtle SHA-256 and
// HMAC-SHA256). Hand-written rather than the AWS SDK for JavaScript, which would need npm and a
// bundler at build time; the algorithm is AWS's, step for step:
// https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html

const encoder = new TextEncoder();

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function bytes(data) {
  return typeof data === "string" ? encoder.encode(data) : data;
}

async function sha256Hex(data) {
  return hex(await crypto.subtle.digest("SHA-256", bytes(data)));
}

async function hmac(key, text) {
  const imported = await crypto.subtle.importKey("raw", bytes(key), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return crypto.subtle.sign("HMAC", imported, encoder.encode(text));
}

/** RFC 3986 percent-encoding: encodeURIComponent leaves !'()* alone, SigV4 does not. */
export function uriEncode(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** `name=value` pairs, encoded and sorted by name then value, as the canonical query string. */
export function canonicalQuery(pairs) {
  const compare = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  return pairs
    .map(([name, value]) => [uriEncode(name), uriEncode(value)])
    .sort(([a, x], [b, y]) => compare(a, b) || compare(x, y))
    .map(([name, value]) => `${name}=${value}`)
    .join("&");
}

/** Services other than S3 encode each path segment twice: once in the URL, once here. */
function canonicalPath(path) {
  return path
    .split("/")
    .map((segment) => uriEncode(uriEncode(decodeURIComponent(segment))))
    .join("/");
}

/** `20150830T123600Z` */
export function amzDate(now) {
  return now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/**
 * The headers that sign a request: `headers` plus `x-amz-date` (and `x-amz-security-token`), and
 * `authorization`. `host` is signed but not returned: a browser sets it itself.
 */
export async function sign({ method, path, query = [], headers = {}, body = "", host, region, service, credentials, now }) {
  const date = amzDate(now ?? new Date());
  const all = { host };
  for (const [name, value] of Object.entries(headers)) all[name.toLowerCase()] = String(value);
  all["x-amz-date"] = date;
  if (credentials.sessionToken) all["x-amz-security-token"] = credentials.sessionToken;
  const names = Object.keys(all).sort();
  const canonicalHeaders = names.map((name) => `${name}:${all[name].trim().replace(/\s+/g, " ")}\n`).join("");
  const signedHeaders = names.join(";");
  const canonicalRequest = [
    method,
    canonicalPath(path),
    canonicalQuery(query),
    canonicalHeaders,
    signedHeaders,
    await sha256Hex(body),
  ].join("\n");
  const scope = `${date.slice(0, 8)}/${region}/${service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", date, scope, await sha256Hex(canonicalRequest)].join("\n");
  let key = await hmac(`AWS4${credentials.secretAccessKey}`, date.slice(0, 8));
  for (const part of [region, service, "aws4_request"]) key = await hmac(key, part);
  const signature = hex(await hmac(key, stringToSign));
  delete all.host;
  all.authorization =
    `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, ` +
    `SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return all;
}
