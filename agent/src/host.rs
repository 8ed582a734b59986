//! Facts about the machine the agent runs on.

/// This machine's host name, as the OS reports it.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// A one-line description of the operating system, e.g.
/// "Debian GNU/Linux 12 (bookworm)" or "Windows 10 Pro 22H2 (build 19045)".
pub fn os_description() -> String {
    describe().unwrap_or_else(|| std::env::consts::OS.to_owned())
}

#[cfg(target_os = "linux")]
fn describe() -> Option<String> {
    let release = std::fs::read_to_string("/etc/os-release").ok()?;
    release.lines().find_map(|line| {
        line.strip_prefix("PRETTY_NAME=")
            .map(|v| v.trim_matches('"').to_owned())
    })
}

#[cfg(windows)]
fn describe() -> Option<String> {
    use winreg::enums::HKEY_LOCAL_MACHINE;
    let key = winreg::RegKey::predef(HKEY_LOCAL_MACHINE)
        .open_subkey(r"SOFTWARE\Microsoft\Windows NT\CurrentVersion")
        .ok()?;
    let product: String = key.get_value("ProductName").ok()?;
    let display: String = key.get_value("DisplayVersion").unwrap_or_default();
    let build: String = key.get_value("CurrentBuild").unwrap_or_default();
    Some(format!("{product} {display} (build {build})").replace("  ", " "))
}

#[cfg(not(any(target_os = "linux", windows)))]
fn describe() -> Option<String> {
    None
}
