//! The S3 destination's `CompressionFormat`: one buffer of records becomes one compressed object.
//!
//! The byte layouts are those readers of Firehose objects expect: a gzip member, a ZIP archive with
//! one deflated entry, the Snappy *framing* format (`Snappy`), and Hadoop's block format
//! (`HADOOP_SNAPPY`, what Athena and Hive read through `SnappyCodec`).

use std::io::{self, Cursor, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Uncompressed,
    Gzip,
    Zip,
    Snappy,
    HadoopSnappy,
}

/// Hadoop's `SnappyCodec` compresses at most `buffer - (buffer / 6 + 32)` input bytes per block, with
/// the default `io.compression.codec.snappy.buffersize` of 256 KiB. Keeping to the same block size keeps
/// every object readable by a `BlockDecompressorStream` configured with the default buffer.
const HADOOP_SNAPPY_BLOCK: usize = 256 * 1024 - (256 * 1024 / 6 + 32);

impl Compression {
    /// The CompressionFormat enum value (`UNCOMPRESSED`, `GZIP`, `ZIP`, `Snappy`, `HADOOP_SNAPPY`).
    pub fn from_aws(name: &str) -> Option<Self> {
        match name {
            "UNCOMPRESSED" => Some(Self::Uncompressed),
            "GZIP" => Some(Self::Gzip),
            "ZIP" => Some(Self::Zip),
            "Snappy" => Some(Self::Snappy),
            "HADOOP_SNAPPY" => Some(Self::HadoopSnappy),
            _ => None,
        }
    }

    /// Compresses one S3 object's bytes; `entry_name` names the single file inside a ZIP archive.
    pub fn compress(self, data: &[u8], entry_name: &str) -> io::Result<Vec<u8>> {
        match self {
            Self::Uncompressed => Ok(data.to_vec()),
            Self::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(data)?;
                encoder.finish()
            }
            Self::Zip => zip_one(data, entry_name),
            Self::Snappy => {
                let mut encoder = snap::write::FrameEncoder::new(Vec::new());
                encoder.write_all(data)?;
                encoder.into_inner().map_err(|e| e.into_error())
            }
            Self::HadoopSnappy => hadoop_snappy(data),
        }
    }

    /// The default file extension Firehose appends (`.gz`, `.zip`, `.snappy`, `.hsnappy`, or "").
    pub fn extension(self) -> &'static str {
        match self {
            Self::Uncompressed => "",
            Self::Gzip => ".gz",
            Self::Zip => ".zip",
            Self::Snappy => ".snappy",
            Self::HadoopSnappy => ".hsnappy",
        }
    }
}

fn zip_one(data: &[u8], entry_name: &str) -> io::Result<Vec<u8>> {
    use chrono::{Datelike, Timelike};
    let now = chrono::Utc::now();
    // ZIP's DOS timestamps cannot hold every instant (1980..=2107); the archive is still valid without one.
    let modified = u16::try_from(now.year())
        .ok()
        .and_then(|year| {
            zip::DateTime::from_date_and_time(
                year,
                now.month() as u8,
                now.day() as u8,
                now.hour() as u8,
                now.minute() as u8,
                now.second() as u8,
            )
            .ok()
        })
        .unwrap_or_default();
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(modified)
        // Firehose buffers up to 128 MiB, but a ZIP64 entry costs nothing when it is not needed.
        .large_file(data.len() >= u32::MAX as usize);
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    writer.start_file(entry_name, options).map_err(io::Error::other)?;
    writer.write_all(data)?;
    Ok(writer.finish().map_err(io::Error::other)?.into_inner())
}

/// Hadoop's `BlockCompressorStream` layout: per block, the 4-byte big-endian uncompressed length, then
/// the 4-byte big-endian compressed length and the raw Snappy block.
fn hadoop_snappy(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = snap::raw::Encoder::new();
    let mut out = Vec::with_capacity(data.len() / 2 + 16);
    if data.is_empty() {
        // What Hadoop writes when an empty stream is closed: one block announcing zero bytes.
        out.extend_from_slice(&0u32.to_be_bytes());
        return Ok(out);
    }
    for block in data.chunks(HADOOP_SNAPPY_BLOCK) {
        let compressed = encoder.compress_vec(block).map_err(io::Error::other)?;
        out.extend_from_slice(&be_len(block.len())?);
        out.extend_from_slice(&be_len(compressed.len())?);
        out.extend_from_slice(&compressed);
    }
    Ok(out)
}

fn be_len(len: usize) -> io::Result<[u8; 4]> {
    u32::try_from(len).map(u32::to_be_bytes).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Read;

    const ALL: [Compression; 5] = [
        Compression::Uncompressed,
        Compression::Gzip,
        Compression::Zip,
        Compression::Snappy,
        Compression::HadoopSnappy,
    ];

    /// Reads the Hadoop block format back, as `BlockDecompressorStream` does: each block's chunks
    /// decompress to exactly the announced length.
    fn hadoop_unsnappy(mut data: &[u8]) -> Vec<u8> {
        fn take_u32(data: &mut &[u8]) -> usize {
            let (head, rest) = data.split_at(4);
            *data = rest;
            u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize
        }
        let mut out = Vec::new();
        let mut decoder = snap::raw::Decoder::new();
        while !data.is_empty() {
            let block_len = take_u32(&mut data);
            let mut got = 0;
            while got < block_len {
                let chunk_len = take_u32(&mut data);
                let (chunk, rest) = data.split_at(chunk_len);
                data = rest;
                let plain = decoder.decompress_vec(chunk).unwrap();
                got += plain.len();
                out.extend_from_slice(&plain);
            }
            assert_eq!(got, block_len, "a block decompresses to its announced length");
        }
        out
    }

    fn decompress(compression: Compression, data: &[u8], entry_name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        match compression {
            Compression::Uncompressed => out.extend_from_slice(data),
            Compression::Gzip => {
                flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap();
            }
            Compression::Zip => {
                let mut archive = zip::ZipArchive::new(Cursor::new(data)).unwrap();
                assert_eq!(archive.len(), 1);
                let mut entry = archive.by_index(0).unwrap();
                assert_eq!(entry.name().unwrap(), entry_name);
                assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
                entry.read_to_end(&mut out).unwrap();
            }
            Compression::Snappy => {
                snap::read::FrameDecoder::new(data).read_to_end(&mut out).unwrap();
            }
            Compression::HadoopSnappy => out = hadoop_unsnappy(data),
        }
        out
    }

    #[test]
    fn aws_names_map_and_unknown_names_are_rejected() {
        let names = ["UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY"];
        for (name, compression) in names.into_iter().zip(ALL) {
            assert_eq!(Compression::from_aws(name), Some(compression));
        }
        // The enum values are case-sensitive on the wire (`Snappy` is not `SNAPPY`).
        for name in ["SNAPPY", "gzip", "Zip", "hadoop_snappy", "", "BZIP2"] {
            assert_eq!(Compression::from_aws(name), None, "{name}");
        }
    }

    #[test]
    fn extensions_are_firehose_defaults() {
        let extensions: Vec<_> = ALL.iter().map(|c| c.extension()).collect();
        assert_eq!(extensions, ["", ".gz", ".zip", ".snappy", ".hsnappy"]);
    }

    #[test]
    fn formats_start_with_their_magic() {
        let data = b"{\"ticker\":\"AMZN\"}\n".repeat(100);
        let gzip = Compression::Gzip.compress(&data, "x").unwrap();
        assert_eq!(&gzip[..3], &[0x1f, 0x8b, 0x08]);
        let zip = Compression::Zip.compress(&data, "x").unwrap();
        assert_eq!(&zip[..4], b"PK\x03\x04");
        // The framing format's stream identifier chunk.
        let snappy = Compression::Snappy.compress(&data, "x").unwrap();
        assert_eq!(&snappy[..10], b"\xff\x06\x00\x00sNaPpY");
        let hadoop = Compression::HadoopSnappy.compress(&data, "x").unwrap();
        assert_eq!(&hadoop[..4], &(data.len() as u32).to_be_bytes());
        assert_eq!(u32::from_be_bytes([hadoop[4], hadoop[5], hadoop[6], hadoop[7]]) as usize, hadoop.len() - 8);
    }

    #[test]
    fn large_input_round_trips_across_blocks_and_frames() {
        let data: Vec<u8> = (0..HADOOP_SNAPPY_BLOCK * 2 + 17).map(|i| (i % 251) as u8).collect();
        for compression in ALL {
            let out = compression.compress(&data, "big.json").unwrap();
            assert_eq!(decompress(compression, &out, "big.json"), data, "{compression:?}");
        }
        let hadoop = Compression::HadoopSnappy.compress(&data, "x").unwrap();
        assert_eq!(&hadoop[..4], &(HADOOP_SNAPPY_BLOCK as u32).to_be_bytes());
    }

    #[test]
    fn empty_input_round_trips() {
        for compression in ALL {
            let out = compression.compress(b"", "empty").unwrap();
            assert!(decompress(compression, &out, "empty").is_empty(), "{compression:?}");
        }
        assert_eq!(Compression::HadoopSnappy.compress(b"", "x").unwrap(), [0, 0, 0, 0]);
    }

    proptest! {
        #[test]
        fn compress_then_decompress_is_identity(
            data in proptest::collection::vec(any::<u8>(), 0..20_000),
            entry_name in "[a-zA-Z0-9._-]{1,40}",
        ) {
            for compression in ALL {
                let out = compression.compress(&data, &entry_name).unwrap();
                prop_assert_eq!(decompress(compression, &out, &entry_name), data.clone());
            }
        }
    }
}
