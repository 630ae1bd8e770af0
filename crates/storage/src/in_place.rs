//! Durable overwrites without per-file metadata: on file systems that write a file's existing
//! blocks in place, bytes written over them are durable once written to the device and the
//! device's volatile cache flushed. A group commit then writes and waits for each file's pages
//! (`sync_file_range`) and flushes the device once, instead of an `fdatasync` per file (each its
//! own flush, and its own thread hand-off). Measured on ext4 with 4 files × 50 KiB per group:
//! 200–210 µs of CPU and 470–480 µs per group with an fdatasync each, 104–113 µs and ~210 µs so.
//!
//! Only where it holds: ext2/3/4 (one magic number), unless the mount journals file data
//! (`data=journal`, where a write goes to the journal first). Not on copy-on-write file systems
//! (btrfs, or XFS whose blocks a reflink copy may share), nor on anything unknown: those get an
//! fdatasync per file as before.

// `sync_file_range(2)` has no safe wrapper in rustix or nix, so it is called through libc: the
// one `unsafe` block of the storage crate, over a descriptor borrowed from a live `File`.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Starts writing the file's dirty pages, without waiting.
pub(crate) fn start_writeback(file: &File) -> io::Result<()> {
    sync_file_range(file, libc::SYNC_FILE_RANGE_WRITE)
}

/// Writes the file's dirty pages and waits until the device has them (in its cache, perhaps).
pub(crate) fn wait_for_writeback(file: &File) -> io::Result<()> {
    sync_file_range(
        file,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    )
}

fn sync_file_range(file: &File, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: the descriptor belongs to `file`, open for the whole call; offset 0 and length 0
    // mean the whole file, and the call touches no memory of this process.
    let result = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, flags) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Which devices write in place, learnt once per device.
#[derive(Default)]
pub(crate) struct Devices {
    known: HashMap<u64, bool>,
}

impl Devices {
    /// The file's device, if overwrites of its blocks are written in place there.
    pub fn in_place(&mut self, file: &File) -> Option<u64> {
        let device = rustix::fs::fstat(file).ok()?.st_dev;
        let in_place = *self.known.entry(device).or_insert_with(|| writes_in_place(file, device));
        in_place.then_some(device)
    }
}

/// ext2, ext3 and ext4 share one magic number (`EXT4_SUPER_MAGIC`).
const EXT_SUPER_MAGIC: u64 = 0xEF53;

fn writes_in_place(file: &File, device: u64) -> bool {
    let is_ext = rustix::fs::fstatfs(file).is_ok_and(|fs| u64::try_from(fs.f_type) == Ok(EXT_SUPER_MAGIC));
    let device = format!("{}:{}", rustix::fs::major(device), rustix::fs::minor(device));
    let journals_data =
        std::fs::read_to_string("/proc/self/mountinfo").ok().and_then(|mounts| journals_data(&mounts, &device));
    is_ext && journals_data == Some(false)
}

/// Whether the file system on `device` ("major:minor") journals file data, from
/// `/proc/self/mountinfo`; None if no mount of it is listed.
pub(crate) fn journals_data(mountinfo: &str, device: &str) -> Option<bool> {
    mountinfo.lines().find_map(|line| {
        // mount id, parent id, major:minor, root, mount point, options, optional fields, " - ",
        // file system type, source, super block options.
        if line.split(' ').nth(2)? != device {
            return None;
        }
        let (_, file_system) = line.split_once(" - ")?;
        let super_options = file_system.split(' ').nth(2)?;
        Some(super_options.split(',').any(|option| option == "data=journal"))
    })
}

/// Whether the file system holding `path` writes overwrites in place (for the start-up log).
pub(crate) fn path_writes_in_place(path: &std::path::Path) -> bool {
    File::open(path).is_ok_and(|dir| Devices::default().in_place(&dir).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 27 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 27 8:17 / /data rw,noatime - ext4 /dev/sdb1 rw,data=journal
";

    #[test]
    fn journalled_data_is_read_from_the_super_block_options() {
        assert_eq!(journals_data(MOUNTINFO, "254:0"), Some(false));
        assert_eq!(journals_data(MOUNTINFO, "8:17"), Some(true));
        assert_eq!(journals_data(MOUNTINFO, "0:28"), Some(false));
        assert_eq!(journals_data(MOUNTINFO, "9:9"), None);
    }

    #[test]
    fn overwrites_are_durable_through_writeback_and_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        std::io::Write::write_all(&mut &file, &[0; 8192]).unwrap();
        file.sync_data().unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, b"overwritten", 100).unwrap();
        start_writeback(&file).unwrap();
        wait_for_writeback(&file).unwrap();
        file.sync_data().unwrap();
    }

    #[test]
    fn memory_file_systems_are_not_taken_for_in_place() {
        let shm = std::path::Path::new("/dev/shm");
        if !shm.is_dir() {
            eprintln!("skipped: no /dev/shm here");
            return;
        }
        let dir = tempfile::tempdir_in(shm).unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        assert_eq!(Devices::default().in_place(&file), None);
        assert!(!path_writes_in_place(dir.path()));
    }
}
