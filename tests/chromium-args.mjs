// Flags for the Debian chromium that the browser tests (tests/node/console.test.js,
// tests/hls-player/play.mjs) launch through Playwright: no sandbox or GPU in a container, and
// nothing that reaches the network on its own (only package registries are reachable here).
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
