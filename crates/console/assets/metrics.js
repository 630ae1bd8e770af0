// The server's metrics (Prometheus text, from the signed /console/api/metrics), read into
// numbers, and turned into per-second rates by sampling counters once a second.

import { consoleGet } from "./aws.js";

const LINE = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

/** Prometheus text → [{ name, labels, value }] (comments and malformed lines skipped). */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    const match = LINE.exec(line);
    if (!match) continue;
    const labels = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(LABEL)) labels[key] = value.replace(/\\(.)/g, "$1");
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** `name`'s samples summed by the value of `label`: { labelValue: total }. */
export function byLabel(samples, name, label) {
  const totals = {};
  for (const sample of samples) {
    if (sample.name !== name) continue;
    const key = sample.labels[label];
    totals[key] = (totals[key] ?? 0) + sample.value;
  }
  return totals;
}

/** Rates of counters between two readings: { key: (now − before) / seconds }, never negative. */
export function rates(now, before, seconds) {
  const out = {};
  for (const [key, value] of Object.entries(now)) {
    const previous = before?.[key];
    out[key] = previous === undefined || seconds <= 0 ? 0 : Math.max(0, (value - previous) / seconds);
  }
  return out;
}

/** Reads the metrics once; answers [samples, time in ms]. */
export async function readMetrics() {
  const text = await consoleGet("metrics");
  return [parseMetrics(text), performance.now()];
}
