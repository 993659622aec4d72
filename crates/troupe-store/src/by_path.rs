//! [`ByPath`]: what tests arm for a file path, looked up when the file is opened

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// A process-wide map from file paths to what a test armed for them (a fault switch, a
/// volatile disk), empty in every production run
pub(crate) struct ByPath<T>(OnceLock<Mutex<HashMap<PathBuf, T>>>);

impl<T: Clone> ByPath<T> {
    pub(crate) const fn new() -> Self {
        Self(OnceLock::new())
    }

    fn map(&self) -> &Mutex<HashMap<PathBuf, T>> {
        self.0.get_or_init(Mutex::default)
    }

    /// Arms `value` for `path`, replacing what was armed
    pub(crate) fn insert(&self, path: &Path, value: T) {
        if let Ok(mut map) = self.map().lock() {
            map.insert(path.to_path_buf(), value);
        }
    }

    /// Disarms `path`
    pub(crate) fn remove(&self, path: &Path) {
        if let Ok(mut map) = self.map().lock() {
            map.remove(path);
        }
    }

    /// What is armed for `path`
    pub(crate) fn get(&self, path: &Path) -> Option<T> {
        self.map().lock().ok()?.get(path).cloned()
    }
}
