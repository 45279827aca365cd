//! The cache file: its format, the atomic write and the checked read.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! magic "TPKCACHE" (8) | format u32 (4) | payload length u64 (8) | SHA-256 of the payload (32) | payload
//! ```
//!
//! The payload is the encoded `proto::Snapshot`, which carries its version
//! and the hash of its content. The header's own checksum catches a torn or
//! flipped file before prost sees it; the snapshot's hash and validation
//! (`Snapshot::try_from`, the same door the stream uses) catch the rest.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use prost::Message;
use sha2::{Digest, Sha256};
use turnpike_model::Snapshot;
use turnpike_proto as proto;

use crate::Error;
use crate::config_client::MAX_MESSAGE_BYTES;

/// The file a data plane restores from at start.
pub const FILE_NAME: &str = "config.snapshot";
/// Written in full and synced before it is renamed over [`FILE_NAME`]; a
/// crash leaves at most this behind, and nothing ever reads it.
pub const TEMP_NAME: &str = "config.snapshot.tmp";

const MAGIC: [u8; 8] = *b"TPKCACHE";
/// Bumped when the layout changes; an older binary then refuses the file
/// instead of misreading it.
const FORMAT: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 8 + 32;

/// The cache file in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The file's bytes for `snapshot`: header, then the encoded snapshot.
pub fn encode(snapshot: &proto::Snapshot) -> Vec<u8> {
    let payload = snapshot.encode_to_vec();
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&payload));
    out.extend_from_slice(&payload);
    out
}

/// Checks the header and checksum, then decodes and validates the snapshot.
/// The error is the reason, for the caller to name the file.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    decode_with_secrets(bytes).map(|(s, _)| s)
}

/// [`decode`], also giving the cluster secrets stored beside the snapshot.
pub fn decode_with_secrets(bytes: &[u8]) -> Result<(Snapshot, proto::ClusterSecrets), String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        ));
    }
    let (header, payload) = bytes.split_at(HEADER_LEN);
    if header[..8] != MAGIC {
        return Err("not a turnpike config cache (wrong magic)".into());
    }
    let format = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if format != FORMAT {
        return Err(format!(
            "cache format {format}, this data plane reads format {FORMAT}"
        ));
    }
    let len = u64::from_le_bytes(header[12..20].try_into().expect("8 bytes"));
    if len != payload.len() as u64 {
        return Err(format!(
            "truncated or padded: the header says {len} payload bytes, the file has {}",
            payload.len()
        ));
    }
    if Sha256::digest(payload)[..] != header[20..HEADER_LEN] {
        return Err("checksum mismatch: the file is corrupt".into());
    }
    let mut wire = proto::Snapshot::decode(payload)
        .map_err(|e| format!("the snapshot does not decode: {e}"))?;
    let secrets = wire.secrets.take().unwrap_or_default();
    let snapshot = Snapshot::try_from(wire).map_err(|e| format!("the snapshot is refused: {e}"))?;
    Ok((snapshot, secrets))
}

/// Reads and checks the cache in `dir`: `None` when there is no cache file;
/// an error (naming the file and why) for anything that must not be served.
pub fn read(dir: &Path) -> Result<Option<Snapshot>, Error> {
    read_with_secrets(dir).map(|o| o.map(|(s, _)| s))
}

/// [`read`], also giving the cluster secrets stored beside the snapshot.
pub fn read_with_secrets(dir: &Path) -> Result<Option<(Snapshot, proto::ClusterSecrets)>, Error> {
    let path = path(dir);
    let refused = |reason: String| Error::CacheRefused {
        path: path.clone(),
        reason,
    };
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(refused(format!("unreadable: {e}"))),
    };
    // Never read more than the stream itself would accept: a huge file is
    // not a cache this process wrote.
    let limit = (HEADER_LEN + MAX_MESSAGE_BYTES) as u64;
    let mut bytes = Vec::new();
    (&mut file)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refused(format!("unreadable: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(refused(format!("larger than the {limit}-byte limit")));
    }
    decode_with_secrets(&bytes).map(Some).map_err(refused)
}

/// Replaces the cache in `dir` with `snapshot`, atomically: a reader (or a
/// restart after a crash at any point) sees the old file or the new one,
/// never a mix. Blocking; call it off the async threads.
pub fn write(dir: &Path, snapshot: &proto::Snapshot) -> Result<(), Error> {
    let target = path(dir);
    let temp = dir.join(TEMP_NAME);
    let bytes = encode(snapshot);
    let result = (|| {
        fs::create_dir_all(dir)?;
        // A leftover from a crash may have other permissions; start afresh.
        match fs::remove_file(&temp) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        // 0600: the snapshot holds secrets data planes need (JWT secrets,
        // certificate keys).
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(&bytes)?;
        // Data on disk before the rename makes it visible...
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, &target)?;
        // ...and the rename itself on disk before we ACK.
        File::open(dir)?.sync_all()
    })();
    result.map_err(|source| {
        let _ = fs::remove_file(&temp);
        Error::CacheWrite {
            path: target,
            source,
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use turnpike_model::{Route, RouteSpec, Upstream, UpstreamSpec};
    use uuid::Uuid;

    use super::*;

    /// A directory removed when the test ends.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new() -> TempDir {
            let dir = std::env::temp_dir().join(format!("turnpike-cache-{}", Uuid::new_v4()));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn snapshot(version: u64) -> Snapshot {
        let upstream = Upstream {
            id: Uuid::now_v7(),
            spec: serde_json::from_value::<UpstreamSpec>(serde_json::json!({
                "name": "u", "targets": [{"address": "127.0.0.1:1"}]
            }))
            .unwrap(),
        };
        let route = Route {
            id: Uuid::now_v7(),
            spec: serde_json::from_value::<RouteSpec>(serde_json::json!({
                "name": "r", "paths": ["/"], "upstream": upstream.id.to_string()
            }))
            .unwrap(),
        };
        Snapshot::new(version, vec![upstream], vec![route])
    }

    fn refusal(dir: &Path) -> String {
        match read(dir) {
            Err(Error::CacheRefused { path: p, reason }) => {
                assert_eq!(p, path(dir));
                reason
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_cluster_secrets_are_kept_beside_the_snapshot() {
        let dir = TempDir::new();
        let mut wire = snapshot(3).to_proto();
        wire.secrets = Some(proto::ClusterSecrets {
            key_auth_pepper: "ab".repeat(32),
        });
        write(&dir.0, &wire).unwrap();
        let (s, secrets) = read_with_secrets(&dir.0).unwrap().unwrap();
        assert_eq!(s.version, 3);
        assert_eq!(secrets.key_auth_pepper, "ab".repeat(32));
    }

    #[test]
    fn round_trip_keeps_version_content_and_hash() {
        let dir = TempDir::new();
        assert!(read(&dir.0).unwrap().is_none(), "no file, no cache");
        let s = snapshot(7);
        write(&dir.0, &s.to_proto()).unwrap();
        let back = read(&dir.0).unwrap().unwrap();
        assert_eq!(back, s);
        assert_eq!(back.hash(), s.hash());
        assert!(!dir.0.join(TEMP_NAME).exists(), "the temp file was renamed");

        // A newer version replaces the file.
        let newer = snapshot(8);
        write(&dir.0, &newer.to_proto()).unwrap();
        assert_eq!(read(&dir.0).unwrap().unwrap(), newer);
    }

    #[test]
    fn truncated_file_is_refused() {
        let dir = TempDir::new();
        write(&dir.0, &snapshot(3).to_proto()).unwrap();
        let full = fs::read(path(&dir.0)).unwrap();
        fs::write(path(&dir.0), &full[..full.len() - 1]).unwrap();
        assert!(refusal(&dir.0).contains("truncated"));
        fs::write(path(&dir.0), &full[..10]).unwrap();
        assert!(refusal(&dir.0).contains("truncated"));
        fs::write(path(&dir.0), b"").unwrap();
        assert!(refusal(&dir.0).contains("truncated"));
    }

    #[test]
    fn flipped_byte_is_refused() {
        let dir = TempDir::new();
        write(&dir.0, &snapshot(3).to_proto()).unwrap();
        let full = fs::read(path(&dir.0)).unwrap();
        // Anywhere in the payload, and in the stored checksum itself.
        for at in [HEADER_LEN, full.len() / 2, full.len() - 1, 30] {
            let mut bad = full.clone();
            bad[at] ^= 0x01;
            fs::write(path(&dir.0), &bad).unwrap();
            assert!(refusal(&dir.0).contains("checksum"), "byte {at}");
        }
    }

    #[test]
    fn wrong_magic_or_format_is_refused() {
        let dir = TempDir::new();
        write(&dir.0, &snapshot(3).to_proto()).unwrap();
        let full = fs::read(path(&dir.0)).unwrap();
        let mut bad = full.clone();
        bad[0] = b'X';
        fs::write(path(&dir.0), &bad).unwrap();
        assert!(refusal(&dir.0).contains("magic"));
        let mut newer = full.clone();
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        fs::write(path(&dir.0), &newer).unwrap();
        assert!(refusal(&dir.0).contains("format 2"));
    }

    #[test]
    fn valid_checksum_over_a_bad_snapshot_is_refused() {
        // The header is only a transport check: what it wraps still goes
        // through the stream's door (hash of the content, validation).
        let dir = TempDir::new();
        let mut wire = snapshot(3).to_proto();
        wire.config.as_mut().unwrap().routes[0].priority = 9;
        fs::write(path(&dir.0), encode(&wire)).unwrap();
        assert!(refusal(&dir.0).contains("hash mismatch"));
    }

    #[test]
    fn leftover_temp_file_is_ignored_and_replaced() {
        let dir = TempDir::new();
        let s = snapshot(4);
        write(&dir.0, &s.to_proto()).unwrap();
        // A crash mid-write leaves a partial temp file next to the good one.
        fs::write(dir.0.join(TEMP_NAME), b"TPKCACHE partial").unwrap();
        assert_eq!(read(&dir.0).unwrap().unwrap(), s);
        // Only a temp file: there is no cache.
        fs::remove_file(path(&dir.0)).unwrap();
        assert!(read(&dir.0).unwrap().is_none());
        // The next write does not trip over it.
        write(&dir.0, &snapshot(5).to_proto()).unwrap();
        assert_eq!(read(&dir.0).unwrap().unwrap().version, 5);
    }

    #[test]
    fn unreadable_cache_is_refused() {
        let dir = TempDir::new();
        // A directory where the file should be: open works, read does not.
        fs::create_dir(path(&dir.0)).unwrap();
        assert!(refusal(&dir.0).contains("unreadable"));
    }
}
