//! The selection the control plane sets for this cluster (`LogSelection`: all namespaces, or a list), kept in a
//! file beside the positions so that a restarted agent collects the same namespaces before it reconnects.

use std::path::{Path, PathBuf};

use agent_protocol::LogSelection;
use prost::Message;
use tokio::sync::watch;
use tracing::{info, warn};

#[derive(Debug)]
pub struct ConfiguredSelection {
    path: PathBuf,
    current: watch::Sender<LogSelection>,
}

impl ConfiguredSelection {
    /// Reads the saved selection; none saved (or unreadable, which is said) means only demo and opted-in
    /// namespaces until the control plane sends one.
    pub fn load(path: &Path) -> Self {
        let saved = match std::fs::read(path) {
            Ok(bytes) => LogSelection::decode(bytes.as_slice()).unwrap_or_else(|err| {
                warn!(path = %path.display(), error = %err,
                      "saved log selection does not decode; collecting demo and opted-in namespaces until the control plane sends it");
                LogSelection::default()
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => LogSelection::default(),
            Err(err) => {
                warn!(path = %path.display(), error = %err, "cannot read the saved log selection");
                LogSelection::default()
            }
        };
        Self {
            path: path.to_owned(),
            current: watch::Sender::new(saved),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<LogSelection> {
        self.current.subscribe()
    }

    /// Takes the control plane's selection: followers change at once, and the file is replaced (atomically) so
    /// a restart keeps it.
    pub fn set(&self, selection: LogSelection) {
        if *self.current.borrow() == selection {
            return;
        }
        info!(all_namespaces = selection.all_namespaces, namespaces = ?selection.namespaces,
              "the control plane set which namespaces' logs are collected");
        if let Err(err) = self.save(&selection) {
            warn!(path = %self.path.display(), error = %err,
                  "cannot save the log selection; a restart before the next connection would forget it");
        }
        self.current.send_replace(selection);
    }

    fn save(&self, selection: &LogSelection) -> std::io::Result<()> {
        crate::files::replace(&self.path, &selection.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_is_kept_across_a_restart_and_a_damaged_file_means_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log-selection.pb");
        let configured = ConfiguredSelection::load(&path);
        let mut updates = configured.subscribe();
        assert_eq!(*updates.borrow(), LogSelection::default());
        let selection = LogSelection {
            all_namespaces: false,
            namespaces: vec!["shop".into(), "team-a".into()],
        };
        configured.set(selection.clone());
        assert!(updates.has_changed().unwrap());
        assert_eq!(*updates.borrow_and_update(), selection);
        // The same again changes nothing.
        configured.set(selection.clone());
        assert!(!updates.has_changed().unwrap());

        assert_eq!(
            *ConfiguredSelection::load(&path).subscribe().borrow(),
            selection
        );
        std::fs::write(&path, [0xff, 0xff, 0xff]).unwrap();
        assert_eq!(
            *ConfiguredSelection::load(&path).subscribe().borrow(),
            LogSelection::default()
        );
    }
}
