//! Checkpoints: the engine's state plus the input position it reflects, on local disk.
//!
//! A checkpoint is written only between messages, once every output of the messages it covers
//! is PubAck'ed, so "state at `last_seq`" and "outputs up to `last_seq` are durable" hold
//! together. The file is replaced atomically (write, fsync, rename, fsync the directory), so a
//! `kill -9` at any moment leaves either the old checkpoint or the new one.

use crate::engine::Engine;
use crate::error::{Error, ErrorKind};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"SGCKPT1\n";

/// Where the engine stands in its streams when the checkpoint was taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// The last `SG_EVENTS` sequence whose effects are in the state (0 = none).
    pub last_seq: u64,
    /// The highest `SG_ALERTS` sequence this engine had been acked for (0 = none).
    pub alerts_seq: u64,
    /// The highest `SG_DLQ` sequence this engine had been acked for (0 = none).
    pub dlq_seq: u64,
}

pub struct Checkpoint {
    pub position: Position,
    pub engine: Engine,
}

/// The checkpoint file of consumer `durable` under `dir`.
pub fn path(dir: &Path, durable: &str) -> PathBuf {
    dir.join(format!("{durable}.ckpt"))
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::with_source(ErrorKind::Io, format!("{what} {}", path.display()), e)
}

/// Write `engine` and `position` to `path`, replacing any previous checkpoint atomically.
/// `buf` is reused across checkpoints.
pub fn save(
    path: &Path,
    position: Position,
    engine: &Engine,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    buf.clear();
    buf.extend_from_slice(MAGIC);
    for v in [position.last_seq, position.alerts_seq, position.dlq_seq] {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    engine.snapshot(buf);
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io_err("cannot create state directory", dir, e))?;
    let tmp = path.with_extension("ckpt.tmp");
    let mut f = File::create(&tmp).map_err(|e| io_err("cannot create", &tmp, e))?;
    f.write_all(buf)
        .map_err(|e| io_err("cannot write", &tmp, e))?;
    f.sync_all().map_err(|e| io_err("cannot sync", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| io_err("cannot replace", path, e))?;
    // The rename itself is durable only once the directory entry is.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The checkpoint at `path`, or `None` if there is none. A damaged file is an error: silently
/// starting from scratch would re-fire every alert since the stream began.
pub fn load(path: &Path) -> Result<Option<Checkpoint>, Error> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("cannot read checkpoint", path, e)),
    };
    let bad = |why: &str| {
        Error::new(
            ErrorKind::Decode,
            format!("checkpoint {} is damaged: {why}", path.display()),
        )
    };
    if bytes.len() < MAGIC.len() + 24 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("not a StreamGuard checkpoint (bad header)"));
    }
    let word = |i: usize| {
        let at = MAGIC.len() + 8 * i;
        u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
    };
    let position = Position {
        last_seq: word(0),
        alerts_seq: word(1),
        dlq_seq: word(2),
    };
    let engine = Engine::restore(&bytes[MAGIC.len() + 24..]).map_err(|e| bad(e.message()))?;
    Ok(Some(Checkpoint { position, engine }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSet;

    const RULES: &str = r#"{"version": 3, "rules": [
        {"id": "shock", "kind": "threshold", "metric": "shock_g", "op": "gt", "value": 3.0,
         "severity": "critical"}]}"#;

    #[test]
    fn save_then_load_round_trips_and_damage_is_an_error() {
        let dir = std::env::temp_dir().join(format!("sg-ckpt-{}", std::process::id()));
        let p = path(&dir, "w0");
        assert!(load(&p).unwrap().is_none());
        let engine = Engine::new(RuleSet::parse(RULES.as_bytes()).unwrap());
        let pos = Position {
            last_seq: 42,
            alerts_seq: 7,
            dlq_seq: 1,
        };
        save(&p, pos, &engine, &mut Vec::new()).unwrap();
        let back = load(&p).unwrap().expect("a checkpoint");
        assert_eq!(back.position, pos);
        assert_eq!(back.engine.rules().version, 3);

        let mut bytes = fs::read(&p).unwrap();
        bytes.truncate(bytes.len() - 3);
        fs::write(&p, &bytes).unwrap();
        let err = load(&p).err().expect("truncated checkpoint must fail");
        assert!(err.message().contains("is damaged"), "{}", err.message());
        fs::write(&p, b"hello").unwrap();
        let err = load(&p).err().expect("foreign file must fail");
        assert!(err.message().contains("bad header"), "{}", err.message());
        fs::remove_dir_all(&dir).unwrap();
    }
}
