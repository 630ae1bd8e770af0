//! Where Lambda keeps its state: function configurations and unpacked code, event-source
//! mappings and their checkpoints, as small JSON files under `<data-dir>/lambda/` written by
//! atomic rename (fsynced), or only in memory (code then goes to a temporary directory).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{LambdaError, Result};

pub struct Store {
    root: PathBuf,
    durable: bool,
    /// Memory mode: the temporary directory code is unpacked into, removed on drop.
    _temporary: Option<tempfile::TempDir>,
}

/// The kinds of record kept, one directory each.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Function,
    Mapping,
    Checkpoint,
}

impl Kind {
    fn directory(self) -> &'static str {
        match self {
            Self::Function => "functions",
            Self::Mapping => "mappings",
            Self::Checkpoint => "checkpoints",
        }
    }
}

impl Store {
    /// `data_dir` is `None` in memory mode.
    pub fn open(data_dir: Option<&Path>) -> Result<Self> {
        let store = match data_dir {
            Some(dir) => Self { root: dir.to_path_buf(), durable: true, _temporary: None },
            None => {
                let temporary =
                    tempfile::Builder::new().prefix("tideline-lambda-").tempdir().map_err(LambdaError::service)?;
                Self { root: temporary.path().to_path_buf(), durable: false, _temporary: Some(temporary) }
            }
        };
        for directory in ["functions", "mappings", "checkpoints", "code"] {
            std::fs::create_dir_all(store.root.join(directory)).map_err(LambdaError::service)?;
        }
        Ok(store)
    }

    /// A fresh, empty directory for one unpacked package.
    pub fn new_code_dir(&self, function: &str) -> Result<PathBuf> {
        let dir = self.root.join("code").join(format!("{function}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(LambdaError::service)?;
        Ok(dir)
    }

    pub fn remove_code_dir(&self, dir: &Path) {
        if dir.starts_with(self.root.join("code")) {
            if let Err(error) = std::fs::remove_dir_all(dir) {
                tracing::warn!(%error, dir = %dir.display(), "cannot remove old function code");
            }
        }
    }

    fn path(&self, kind: Kind, key: &str) -> PathBuf {
        self.root.join(kind.directory()).join(format!("{key}.json"))
    }

    /// Writes a record durably: the file is complete or absent after a crash.
    pub fn save<T: Serialize>(&self, kind: Kind, key: &str, value: &T) -> Result<()> {
        if !self.durable {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(value).map_err(LambdaError::service)?;
        let path = self.path(kind, key);
        let directory = self.root.join(kind.directory());
        let mut file = tempfile::NamedTempFile::new_in(&directory).map_err(LambdaError::service)?;
        std::io::Write::write_all(&mut file, &bytes).map_err(LambdaError::service)?;
        file.as_file().sync_all().map_err(LambdaError::service)?;
        file.persist(&path).map_err(|error| LambdaError::service(error.error))?;
        std::fs::File::open(&directory).and_then(|dir| dir.sync_all()).map_err(LambdaError::service)
    }

    pub fn delete(&self, kind: Kind, key: &str) -> Result<()> {
        if !self.durable {
            return Ok(());
        }
        match std::fs::remove_file(self.path(kind, key)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(LambdaError::service(error)),
            _ => Ok(()),
        }
    }

    pub fn load<T: DeserializeOwned>(&self, kind: Kind, key: &str) -> Option<T> {
        let bytes = std::fs::read(self.path(kind, key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every record of a kind; unreadable files are logged and skipped.
    pub fn load_all<T: DeserializeOwned>(&self, kind: Kind) -> Vec<T> {
        let Ok(entries) = std::fs::read_dir(self.root.join(kind.directory())) else { return Vec::new() };
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|extension| extension != "json") {
                continue;
            }
            match std::fs::read(&path).map(|bytes| serde_json::from_slice::<T>(&bytes)) {
                Ok(Ok(record)) => records.push(record),
                Ok(Err(error)) => tracing::warn!(%error, path = %path.display(), "skipping unreadable Lambda record"),
                Err(error) => tracing::warn!(%error, path = %path.display(), "skipping unreadable Lambda record"),
            }
        }
        records
    }
}
