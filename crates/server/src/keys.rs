//! The master key that seals secrets: loaded from `TOLLGATE_MASTER_KEY` or from
//! `<data_dir>/master.key` (generated 0600 on first start), plus any earlier keys kept
//! beside it (`master.key.*`) so secrets sealed before a rotation stay readable.

use crate::error::ServerError;
use crate::settings::Settings;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tollgate_store::seal::{Keyring, MasterKey};

const KEY_FILE: &str = "master.key";

fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

/// Creates the data dir (and parents) when missing; the dir itself gets mode 0700 since it
/// holds the master key and the bootstrap token. An existing dir is left as the operator set it.
pub fn create_private_dir(path: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::DirBuilderExt;
    if path.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(ServerError::io(format!("creating data dir {}", path.display())))
}

/// Writes `contents` to a new file readable only by its owner (0600).
pub fn write_private_file(path: &Path, contents: &str) -> Result<(), ServerError> {
    let ctx = || format!("writing {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(ServerError::io(ctx()))?;
    f.write_all(contents.as_bytes()).map_err(ServerError::io(ctx()))?;
    f.sync_all().map_err(ServerError::io(ctx()))?;
    Ok(())
}

fn read_key(path: &Path) -> Result<MasterKey, ServerError> {
    let text = std::fs::read_to_string(path).map_err(ServerError::io(format!("reading {}", path.display())))?;
    MasterKey::from_base64(text.trim())
        .map_err(|e| ServerError::MasterKey(format!("{} is not a valid master key: {e}", path.display())))
}

/// Earlier keys kept beside the key file (`master.key.retired-<id>`, `master.key.next`).
fn older_keys(data_dir: &Path) -> Result<Vec<MasterKey>, ServerError> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Ok(out);
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("master.key.") {
            out.push(read_key(&e.path())?);
        }
    }
    Ok(out)
}

/// Loads (or on first start generates) the keyring.
pub fn load_keyring(settings: &Settings) -> Result<Keyring, ServerError> {
    let primary = match &settings.master_key {
        Some(b64) => MasterKey::from_base64(b64.expose().trim()).map_err(|e| {
            ServerError::MasterKey(format!("TOLLGATE_MASTER_KEY must be the base64 of 32 random bytes: {e}"))
        })?,
        None => {
            create_private_dir(&settings.data_dir)?;
            let path = key_file(&settings.data_dir);
            if path.exists() {
                read_key(&path)?
            } else {
                let key = MasterKey::generate().map_err(|e| ServerError::MasterKey(e.to_string()))?;
                write_private_file(&path, &key.to_base64())?;
                tracing::info!(path = %path.display(), key_id = %key.key_id(), "generated a new master key");
                key
            }
        }
    };
    let mut ring = Keyring::new(primary);
    for old in older_keys(&settings.data_dir)? {
        ring = ring.with_old(old);
    }
    Ok(ring)
}

/// Transcripts re-sealed per transaction by [`rotate`].
const TRANSCRIPT_CHUNK: i64 = 500;

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    pub resealed: usize,
    /// Transcripts re-sealed (their bodies are sealed with the master key too).
    pub transcripts_resealed: u64,
    pub old_key_id: String,
    pub new_key_id: String,
    /// The new key, when the operator must install it themselves (env-provided keys).
    pub new_key_base64: Option<String>,
}

/// Re-seals every secret, then every transcript (in chunks), under a new master key.
///
/// With a key file: the new key is written to `master.key.next` first, secrets are re-sealed in
/// one transaction, then the old file is kept as `master.key.retired-<id>` and the new one takes
/// its place; a crash at any point leaves every secret readable. With `TOLLGATE_MASTER_KEY`, the
/// new key comes from `new_key_base64` (or is generated and returned) and the operator swaps the
/// environment variable.
pub async fn rotate(
    settings: &Settings,
    store: &tollgate_store::Store,
    transcripts: &tollgate_store::TranscriptStore,
    new_key_base64: Option<&str>,
) -> Result<Rotation, ServerError> {
    let old_id = store.keyring().primary_id();
    let new_key = match new_key_base64 {
        Some(b64) => {
            MasterKey::from_base64(b64.trim()).map_err(|e| ServerError::MasterKey(format!("new master key: {e}")))?
        }
        None => MasterKey::generate().map_err(|e| ServerError::MasterKey(e.to_string()))?,
    };
    let new_id = new_key.key_id();
    if new_id == old_id {
        return Err(ServerError::MasterKey("the new master key equals the current one".into()));
    }
    if settings.master_key.is_some() {
        let resealed = store.rotate_master_key(new_key.clone()).await?;
        let transcripts_resealed = transcripts.reseal(&store.keyring(), TRANSCRIPT_CHUNK).await?;
        return Ok(Rotation {
            resealed,
            transcripts_resealed,
            old_key_id: old_id,
            new_key_id: new_id,
            new_key_base64: if new_key_base64.is_none() { Some(new_key.to_base64()) } else { None },
        });
    }
    let dir = &settings.data_dir;
    let next = dir.join(format!("{KEY_FILE}.next"));
    write_private_file(&next, &new_key.to_base64())?;
    let resealed = store.rotate_master_key(new_key).await?;
    // A crash from here on leaves `master.key.next` beside the old key: both are loaded
    // (`older_keys`), so every secret and transcript still opens, and a rerun finishes.
    let transcripts_resealed = transcripts.reseal(&store.keyring(), TRANSCRIPT_CHUNK).await?;
    let current = key_file(dir);
    let retired = dir.join(format!("{KEY_FILE}.retired-{old_id}"));
    std::fs::rename(&current, &retired).map_err(ServerError::io(format!("renaming {}", current.display())))?;
    std::fs::rename(&next, &current).map_err(ServerError::io(format!("renaming {}", next.display())))?;
    Ok(Rotation { resealed, transcripts_resealed, old_key_id: old_id, new_key_id: new_id, new_key_base64: None })
}
