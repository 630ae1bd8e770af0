//! Function code: a `Code.ZipFile` archive checked and unpacked into the function's directory.
//!
//! Archives come from clients, so every entry's path must stay inside the target directory (no
//! `..`, no absolute paths) and the bytes written are capped in total, whatever the entries'
//! declared sizes say (a zip bomb declares small sizes and inflates to gigabytes).

use std::io::{Read, Write};
use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{LambdaError, Result};

/// AWS's limit on a function's unzipped deployment package.
pub const MAX_UNZIPPED_BYTES: u64 = 250 * 1024 * 1024;
/// Entries in one archive: bounds the work of a hostile central directory.
const MAX_ENTRIES: usize = 20_000;

/// What CreateFunction and GetFunction report about the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeDigest {
    /// Base64 SHA-256 of the archive, as `CodeSha256`.
    pub sha256: String,
    pub size: u64,
}

pub fn digest(zip: &[u8]) -> CodeDigest {
    let hash = Sha256::digest(zip);
    CodeDigest { sha256: base64::engine::general_purpose::STANDARD.encode(hash), size: zip.len() as u64 }
}

/// Unpacks `zip` into `target` (which must exist and be empty), keeping unix permission bits so
/// that a `provided` runtime's `bootstrap` stays executable.
pub fn unpack(zip: &[u8], target: &Path, max_bytes: u64) -> Result<()> {
    let unreadable = |error: zip::result::ZipError| {
        LambdaError::invalid(format!(
            "Could not unzip uploaded file. Please check your file, then try to upload again. ({error})"
        ))
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).map_err(unreadable)?;
    if archive.len() > MAX_ENTRIES {
        return Err(LambdaError::invalid(format!("Unzipped package has more than {MAX_ENTRIES} files.")));
    }
    let mut budget = max_bytes;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(unreadable)?;
        let Some(relative) = entry.enclosed_name() else {
            return Err(LambdaError::invalid(format!("Zip entry {:?} leaves the package directory.", entry.name())));
        };
        let path = target.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&path).map_err(LambdaError::service)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(LambdaError::service)?;
        }
        let mut file = std::fs::File::create(&path).map_err(LambdaError::service)?;
        // One byte more than the budget tells "over the cap" from "exactly at it".
        let mut limited = (&mut entry).take(budget + 1);
        let written = std::io::copy(&mut limited, &mut file).map_err(|error| match error.kind() {
            std::io::ErrorKind::InvalidData => LambdaError::invalid(format!("Corrupt zip entry: {error}")),
            _ => LambdaError::service(error),
        })?;
        if written > budget {
            return Err(LambdaError::RequestTooLarge(format!("Unzipped size must be smaller than {max_bytes} bytes")));
        }
        budget -= written;
        file.flush().map_err(LambdaError::service)?;
        if let Some(mode) = entry.unix_mode() {
            use std::os::unix::fs::PermissionsExt;
            // Only the permission bits: no setuid/setgid from an upload.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777))
                .map_err(LambdaError::service)?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A zip of `(name, contents, unix mode)` entries.
    pub(crate) fn zip_of(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, contents, mode) in entries {
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .unix_permissions(*mode);
            writer.start_file(*name, options).unwrap();
            writer.write_all(contents).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn unpacks_files_with_their_modes() {
        let dir = tempfile::tempdir().unwrap();
        let zip = zip_of(&[("app.py", b"print(1)", 0o644), ("bin/bootstrap", b"#!/bin/sh", 0o755)]);
        unpack(&zip, dir.path(), MAX_UNZIPPED_BYTES).unwrap();
        assert_eq!(std::fs::read(dir.path().join("app.py")).unwrap(), b"print(1)");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("bin/bootstrap")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(digest(&zip).size, zip.len() as u64);
    }

    #[test]
    fn refuses_escaping_paths_oversized_content_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let escaping = zip_of(&[("../evil.py", b"x", 0o644)]);
        assert!(matches!(unpack(&escaping, dir.path(), 1000), Err(LambdaError::InvalidParameterValue(_))));
        assert!(!dir.path().parent().unwrap().join("evil.py").exists());
        let bomb = zip_of(&[("big", &vec![0u8; 100_000], 0o644)]);
        assert!(bomb.len() < 1000, "deflates well");
        assert!(matches!(unpack(&bomb, dir.path(), 10_000), Err(LambdaError::RequestTooLarge(_))));
        assert!(matches!(unpack(b"not a zip", dir.path(), 1000), Err(LambdaError::InvalidParameterValue(_))));
    }
}
