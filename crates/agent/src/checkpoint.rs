//! The checkpoint file: for each flow, the files it tails by identity (device and inode, which
//! survive a rename), a digest of their first bytes, and the offset up to which their records are
//! acknowledged. Written after
//! each acknowledged batch, by writing a temporary file and renaming it over the old one, so a
//! crash leaves either the old or the new checkpoints, never a torn file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileIdentity {
    pub device: u64,
    pub inode: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// Where the file was last seen; informational, the identity is what counts.
    pub path: PathBuf,
    #[serde(flatten)]
    pub identity: FileIdentity,
    pub offset: u64,
    /// The file's first bytes when checkpointed: other bytes there at a restart mean it was
    /// truncated and written again meanwhile. Absent in checkpoints of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<Head>,
}

/// How many first bytes of the file, and their MD5 (hex).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Head {
    pub bytes: u64,
    pub md5: String,
}

#[derive(Default, Serialize, Deserialize)]
struct State {
    flows: BTreeMap<String, Vec<Entry>>,
}

pub struct Checkpoints {
    path: PathBuf,
    /// Held across the write so that writes of different flows land in order.
    state: tokio::sync::Mutex<State>,
}

impl Checkpoints {
    pub fn load(path: &Path) -> Result<Checkpoints> {
        let error = |source| AgentError::Checkpoint { path: path.display().to_string(), source };
        let state = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| error(e.into()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(error(e)),
        };
        Ok(Checkpoints { path: path.to_path_buf(), state: tokio::sync::Mutex::new(state) })
    }

    /// The flow's checkpointed files; None when the flow has never checkpointed.
    pub async fn flow(&self, flow: &str) -> Option<Vec<Entry>> {
        self.state.lock().await.flows.get(flow).cloned()
    }

    pub async fn save(&self, flow: &str, entries: Vec<Entry>) -> std::io::Result<()> {
        let mut state = self.state.lock().await;
        state.flows.insert(flow.to_string(), entries);
        let bytes = serde_json::to_vec_pretty(&*state)?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes)).await.map_err(std::io::Error::other)?
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}
