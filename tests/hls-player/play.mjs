// Plays an HLS URL in headless Chromium with hls.js and reports how far playback got.
//
//   node play.mjs <master-playlist-url> <screenshot.png> [seconds] [live]
//
// Prints one JSON line: {"currentTime": s, "errors": [...], "stalls": [...], "width": w, "height": h};
// exits 0 once the video has played past `seconds` (default 3) with no hls.js error, 1 otherwise.
// With `live`, hls.js's non-fatal stall reports are listed under "stalls" instead of failing the run:
// a player that starts with fewer than three target durations published reaches the live edge and
// waits there for the producer, which hls.js reports (and recovers from) as a stall. The player
// page is served at the playlist's own origin (intercepted by Playwright, never fetched), so the
// HLS requests are same-origin like a page on the server would make them.

import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

import { chromium } from "playwright-core";

import { CHROMIUM_ARGS } from "../chromium-args.mjs";

const [url, screenshot, seconds = "3", mode = ""] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error("usage: node play.mjs <master-playlist-url> <screenshot.png> [seconds] [live]");
  process.exit(2);
}
const target = Number(seconds);
const LIVE_EDGE_STALLS = mode === "live" ? ["bufferStalledError", "bufferNudgeOnStall"] : [];
const TIMEOUT_MS = 45_000;
const hlsScript = createRequire(import.meta.url).resolve("hls.js/dist/hls.min.js");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";

const PAGE = `<!doctype html><html><body style="margin:0;background:#000">
<video id="video" muted autoplay playsinline style="width:640px;height:480px"></video></body></html>`;

const userDataDir = mkdtempSync(path.join(tmpdir(), "tideline-hls-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [...CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
});
let result = { currentTime: 0, errors: ["not started"] };
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const pageUrl = new URL("/tideline-hls-player.html", url).href;
  await page.route(pageUrl, (route) => route.fulfill({ contentType: "text/html", body: PAGE }));
  await page.goto(pageUrl);
  await page.addScriptTag({ path: hlsScript });
  result = await page.evaluate(
    ({ url, target, timeoutMs, tolerated }) =>
      new Promise((resolve) => {
        const video = document.getElementById("video");
        const errors = [];
        const stalls = [];
        const hls = new Hls();
        hls.on(Hls.Events.ERROR, (_, data) => {
          const entry = `${data.type}/${data.details}${data.fatal ? " (fatal)" : ""}`;
          (!data.fatal && tolerated.includes(data.details) ? stalls : errors).push(entry);
        });
        hls.loadSource(url);
        hls.attachMedia(video);
        hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch((error) => errors.push(`play: ${error}`)));
        const report = () => ({
          currentTime: video.currentTime,
          errors,
          stalls,
          width: video.videoWidth,
          height: video.videoHeight,
        });
        const started = Date.now();
        const poll = setInterval(() => {
          const fatal = errors.some((error) => error.endsWith("(fatal)"));
          if (video.currentTime > target || fatal || Date.now() - started > timeoutMs) {
            clearInterval(poll);
            resolve(report());
          }
        }, 100);
      }),
    { url, target, timeoutMs: TIMEOUT_MS, tolerated: LIVE_EDGE_STALLS },
  );
  await page.screenshot({ path: screenshot });
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(result.currentTime > target && result.errors.length === 0 ? 0 : 1);
