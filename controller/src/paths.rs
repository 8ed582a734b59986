//! Where the controller keeps its files when no flag says otherwise.

use std::path::PathBuf;

/// `$TIERWISE_DATA_DIR`, else the platform's per-machine or per-user data
/// directory: `%ProgramData%\Tierwise` on Windows; on Unix `/var/lib/tierwise`
/// when running as root, otherwise `$XDG_DATA_HOME/tierwise` or
/// `~/.local/share/tierwise`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TIERWISE_DATA_DIR") {
        return PathBuf::from(dir);
    }
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData")
            .map_or_else(|| PathBuf::from(r"C:\ProgramData"), PathBuf::from);
        return base.join("Tierwise");
    }
    if is_root() {
        return PathBuf::from("/var/lib/tierwise");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("tierwise");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/tierwise");
    }
    PathBuf::from("tierwise-data")
}

fn is_root() -> bool {
    // Without libc: the effective uid is in /proc on Linux; elsewhere assume
    // a normal user and use the per-user directory.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Creates the data directory owner-only (0700), or makes an existing one
/// so: it holds the CA key, the admin token, the database and the
/// installers.
pub fn private_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    match tierwise_transport::files::private_dir(dir) {
        Ok(true) => {
            tracing::warn!(dir = %dir.display(), "the data directory was open to other users; it is owner-only now");
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(error) => Err(std::io::Error::other(error.to_string())),
    }
}
