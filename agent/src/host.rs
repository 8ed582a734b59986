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

/// The space free to this process on the volume that holds `path`.
#[cfg(unix)]
#[allow(unsafe_code)]
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call,
    // and `stat` is written by statvfs before it is read, only on success.
    let stat = unsafe {
        if libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) != 0 {
            return None;
        }
        stat.assume_init()
    };
    #[allow(clippy::useless_conversion)] // the field types differ by platform
    let (available, size) = (u64::from(stat.f_bavail), u64::from(stat.f_frsize));
    available.checked_mul(size)
}

/// The space free to this process on the volume that holds `path`.
#[cfg(windows)]
#[allow(unsafe_code)]
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::windows::ffi::OsStrExt;
    let wide: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
    let mut available = 0u64;
    // SAFETY: `wide` is NUL-terminated and outlives the call; the result is
    // written to a valid u64, the two other outputs may be null.
    let ok = unsafe {
        windows_sys::Win32::Storage::FileSystem::GetDiskFreeSpaceExW(
            wide.as_ptr(),
            &mut available,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    (ok != 0).then_some(available)
}

/// When this machine last started (Unix ms), so the controller can tell
/// that a restart it waited for happened. `TIERWISE_AGENT_BOOT_MS` overrides
/// it, for testing restart orchestration where a machine cannot restart.
pub fn boot_ms() -> Option<i64> {
    if let Some(value) = std::env::var_os("TIERWISE_AGENT_BOOT_MS") {
        return value.to_str().and_then(|v| v.trim().parse().ok());
    }
    booted()
}

#[cfg(target_os = "linux")]
fn booted() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let seconds: i64 = stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    seconds.checked_mul(1000)
}

#[cfg(windows)]
#[allow(unsafe_code)]
fn booted() -> Option<i64> {
    // SAFETY: GetTickCount64 takes no arguments and cannot fail.
    let up_ms = unsafe { windows_sys::Win32::System::SystemInformation::GetTickCount64() };
    let now = tierwise_runtime::clock::now_ms();
    // Rounded to seconds: the two clocks are read at slightly different
    // moments, and a boot time must not move between hellos.
    Some((now - i64::try_from(up_ms).ok()?) / 1000 * 1000)
}

#[cfg(not(any(target_os = "linux", windows)))]
fn booted() -> Option<i64> {
    None
}

/// The machine-wide application data folder (`C:\ProgramData`), asked of
/// the shell rather than read from `%ProgramData%`: a service's environment
/// is not always the interactive one, and the MSI creates the agent's
/// folder where the shell says.
#[cfg(windows)]
#[allow(unsafe_code)]
pub fn program_data() -> std::path::PathBuf {
    use std::os::windows::ffi::OsStringExt;
    use windows_sys::Win32::System::Com::CoTaskMemFree;
    use windows_sys::Win32::UI::Shell::{FOLDERID_ProgramData, SHGetKnownFolderPath};
    let mut path: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: FOLDERID_ProgramData is a static GUID; on success the shell
    // returns a NUL-terminated UTF-16 string that we read up to its NUL and
    // free with CoTaskMemFree exactly once (also on failure, as documented).
    let found = unsafe {
        let result =
            SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, std::ptr::null_mut(), &mut path);
        let found = if result == 0 && !path.is_null() {
            let mut len = 0usize;
            while *path.add(len) != 0 {
                len += 1;
            }
            Some(std::ffi::OsString::from_wide(std::slice::from_raw_parts(
                path, len,
            )))
        } else {
            None
        };
        CoTaskMemFree(path as *const core::ffi::c_void);
        found
    };
    found
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("ProgramData").map(std::path::PathBuf::from))
        .unwrap_or_else(|| std::path::PathBuf::from(r"C:\ProgramData"))
}
