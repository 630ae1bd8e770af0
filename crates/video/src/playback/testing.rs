//! Test media: a KVS-shaped Matroska stream made by ffmpeg, and ffprobe's view of what playback
//! makes of it. Both tools are optional: tests that need them say so and pass when one is absent.
//! Also the one HLS session the token and resource tests start from.

use std::path::Path;
use std::process::Command;

use super::archive::{Clock, Window};
use super::session::{DiscontinuityMode, Mode, Session};

fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("-version").output().is_ok_and(|output| output.status.success());
    if !found {
        eprintln!("skipped: {tool} is not installed (Debian package ffmpeg)");
    }
    found
}

/// `seconds` of H.264 (320x240, 25 fps, a key frame every 2 s) and AAC (44.1 kHz mono) in
/// Matroska, with a Cluster every 2 s, as `ffmpeg -live 1` streams it to PutMedia.
pub(crate) fn kvs_mkv(seconds: u32) -> Option<Vec<u8>> {
    if !have("ffmpeg") {
        return None;
    }
    let output = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=f=440:r=44100", "-t", &seconds.to_string()])
        .args(["-pix_fmt", "yuv420p", "-c:v", "libx264", "-profile:v", "baseline", "-g", "50"])
        .args(["-keyint_min", "50", "-sc_threshold", "0", "-bf", "0", "-c:a", "aac"])
        .args(["-f", "matroska", "-cluster_time_limit", "2000", "-live", "1", "pipe:1"])
        .output()
        .expect("ffmpeg runs");
    assert!(output.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&output.stderr));
    Some(output.stdout)
}

/// ffprobe's JSON description (`-show_format -show_streams`) of the file at `path`.
pub(crate) fn probe(path: &Path) -> Option<serde_json::Value> {
    if !have("ffprobe") {
        return None;
    }
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json", "-show_format", "-show_streams", "-count_packets"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(output.status.success(), "ffprobe refused the file: {}", String::from_utf8_lossy(&output.stderr));
    Some(serde_json::from_slice(&output.stdout).expect("ffprobe writes JSON"))
}

/// `seconds` of [`kvs_mkv`] split as PutMedia splits it: the stream's tracks, and each Cluster's
/// children as the fragment store keeps them.
pub(crate) fn fragments(seconds: u32) -> Option<(crate::playback::remux::Header, Vec<Vec<u8>>)> {
    let stream = kvs_mkv(seconds)?;
    let mut splitter = crate::media::ingest::Splitter::new();
    let mut clusters = splitter.push(&stream).expect("ffmpeg writes valid Matroska");
    clusters.extend(splitter.finish().expect("ffmpeg ends its stream"));
    let header = crate::playback::archive::tracks(&clusters[0].header);
    Some((header, clusters.into_iter().map(|cluster| cluster.body).collect()))
}

/// A LIVE session of stream `cam` on server time, five fragments a playlist.
pub(crate) fn live_session() -> Session {
    Session {
        stream: "cam".into(),
        arn: "arn:aws:kinesisvideo:us-east-1:000000000000:stream/cam/1".into(),
        mode: Mode::Live,
        window: Window { clock: Clock::Server, start_ms: None, end_ms: None },
        discontinuity: DiscontinuityMode::Always,
        program_date_time: false,
        max_fragments: 5,
        origin: 0,
        expires_s: 1_000,
    }
}
