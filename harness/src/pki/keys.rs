//! The key cache: RSA keys cost 50–130 ms each to generate, so they are made once and kept.
//!
//! Keys live in numbered slots per key type (`rsa-2048/0003.pk8`). A topology takes slots in
//! build order, so the same topology always gets the same keys, and a second run of anything
//! pays nothing for them. The cache is a directory: `$MRALAB_KEY_CACHE` when set, otherwise
//! `mralab-keys/` in the workspace's target directory (`cargo clean` or
//! `cargo xtask keys --clear` removes it). Keys are test material for loopback labs only.
//! Within a process, slots are also kept in memory.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize};
use rustls_pki_types::PrivatePkcs8KeyDer;

use super::KeyType;

/// Failures of the key cache.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Key generation failed in the crypto library.
    #[error("generating a {key_type} key: {source}")]
    Generate {
        /// The key type.
        key_type: KeyType,
        /// The library's error.
        source: rcgen::Error,
    },
    /// A cached key file could not be read back as a key of its type.
    #[error("cached key {path} is unreadable ({source}); remove the cache directory to rebuild it")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: rcgen::Error,
    },
    /// The cache directory could not be written.
    #[error("key cache {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A store of PKCS#8 keys by (type, slot), on disk or in memory only.
#[derive(Debug, Clone)]
pub struct KeyCache {
    dir: Option<PathBuf>,
}

type Memo = Mutex<HashMap<(Option<PathBuf>, KeyType, usize), Arc<Vec<u8>>>>;

fn memo() -> &'static Memo {
    static MEMO: OnceLock<Memo> = OnceLock::new();
    MEMO.get_or_init(Default::default)
}

impl Default for KeyCache {
    /// The cache at [`KeyCache::default_dir`].
    fn default() -> Self {
        KeyCache { dir: Some(KeyCache::default_dir()) }
    }
}

impl KeyCache {
    /// `$MRALAB_KEY_CACHE`, or `<target dir>/mralab-keys` (`$CARGO_TARGET_DIR` or the
    /// workspace's `target/`).
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("MRALAB_KEY_CACHE") {
            return PathBuf::from(dir);
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
        target.join("mralab-keys")
    }

    /// A cache in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        KeyCache { dir: Some(dir.into()) }
    }

    /// A cache that keeps keys in this process only (benchmarks of a cold cache use it).
    pub fn in_memory() -> Self {
        KeyCache { dir: None }
    }

    /// The directory, if this cache is on disk.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Removes every cached key, on disk and in this process.
    pub fn clear(&self) -> Result<(), KeyError> {
        memo().lock().unwrap_or_else(|p| p.into_inner()).retain(|(dir, _, _), _| dir != &self.dir);
        match &self.dir {
            Some(dir) if dir.exists() => {
                std::fs::remove_dir_all(dir).map_err(|source| KeyError::Io { path: dir.clone(), source })
            }
            _ => Ok(()),
        }
    }

    /// Forgets this process's in-memory copies (the disk cache stays).
    pub fn forget_in_memory() {
        memo().lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The key in `slot` for `key_type`, generated and stored on first use.
    pub fn key(&self, key_type: KeyType, slot: usize) -> Result<KeyPair, KeyError> {
        let memo_key = (self.dir.clone(), key_type, slot);
        // One lock for the memo and generation: two threads asking for the same slot must get
        // the same key, and generation is CPU-bound anyway.
        let mut memo = memo().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let der = match memo.get(&memo_key) {
            Some(der) => der.clone(),
            None => {
                let der = Arc::new(self.load_or_generate(key_type, slot)?);
                memo.insert(memo_key, der.clone());
                der
            }
        };
        drop(memo);
        parse(key_type, &der).map_err(|source| KeyError::Corrupt { path: self.path(key_type, slot), source })
    }

    fn path(&self, key_type: KeyType, slot: usize) -> PathBuf {
        let dir = self.dir.clone().unwrap_or_default();
        dir.join(key_type.name()).join(format!("{slot:04}.pk8"))
    }

    fn load_or_generate(&self, key_type: KeyType, slot: usize) -> Result<Vec<u8>, KeyError> {
        let Some(_) = &self.dir else { return generate(key_type) };
        let path = self.path(key_type, slot);
        if let Ok(der) = std::fs::read(&path) {
            parse(key_type, &der).map_err(|source| KeyError::Corrupt { path: path.clone(), source })?;
            return Ok(der);
        }
        let der = generate(key_type)?;
        // Write to a unique temporary name and link it in without replacing, so that two
        // processes filling the same slot never leave a half-written file and agree on the key:
        // the first one in wins, the other reads it back.
        let io = |source| KeyError::Io { path: path.clone(), source };
        let parent = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io)?;
        let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(io)?;
        tmp.write_all(&der).map_err(io)?;
        match tmp.persist_noclobber(&path) {
            Ok(_) => Ok(der),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                let der = std::fs::read(&path).map_err(io)?;
                parse(key_type, &der).map_err(|source| KeyError::Corrupt { path: path.clone(), source })?;
                Ok(der)
            }
            Err(e) => Err(io(e.error)),
        }
    }
}

fn algorithm(key_type: KeyType) -> &'static rcgen::SignatureAlgorithm {
    match key_type {
        KeyType::EcdsaP256 => &PKCS_ECDSA_P256_SHA256,
        KeyType::EcdsaP384 => &PKCS_ECDSA_P384_SHA384,
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &PKCS_RSA_SHA256,
    }
}

fn generate(key_type: KeyType) -> Result<Vec<u8>, KeyError> {
    let alg = algorithm(key_type);
    let key = match key_type {
        KeyType::EcdsaP256 | KeyType::EcdsaP384 => KeyPair::generate_for(alg),
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(alg, RsaKeySize::_2048),
        KeyType::Rsa3072 => KeyPair::generate_rsa_for(alg, RsaKeySize::_3072),
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(alg, RsaKeySize::_4096),
    }
    .map_err(|source| KeyError::Generate { key_type, source })?;
    Ok(key.serialize_der())
}

fn parse(key_type: KeyType, der: &[u8]) -> Result<KeyPair, rcgen::Error> {
    KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der), algorithm(key_type))
}
