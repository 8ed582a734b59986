//! Windows probes: the Uninstall registry entries, the client's database
//! profiles, executable file versions and DWORD flags. Only reading lives
//! here; what the entries and profiles mean is decided in `discovery`.
//! Registry and file-version calls block, so they run on the blocking pool.

use super::discovery::{self, RawProfile, UninstallEntry};
use crate::config::Pattern;
use std::path::PathBuf;
use tierwise_common::{Check, DatabaseProfile, ProbedVersion, Role, Version};
use winreg::enums::{HKEY_LOCAL_MACHINE, HKEY_USERS, KEY_READ, KEY_WOW64_64KEY};
use winreg::RegKey;

const UNINSTALL_KEYS: [&str; 2] = [
    r"SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall",
    r"SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall",
];

/// Where the client keeps its database profiles, under HKLM (both views)
/// and under each user's hive; the name is the vendor's old product name.
const PROFILE_KEYS: [&str; 2] = [
    r"SOFTWARE\MATESO\Password Safe and Repository 8\DatabaseProfiles",
    r"SOFTWARE\WOW6432Node\MATESO\Password Safe and Repository 8\DatabaseProfiles",
];

/// The 64-bit view whatever this build is, so the WOW6432Node paths above
/// are the only 32-bit reads.
const READ: u32 = KEY_READ | KEY_WOW64_64KEY;

/// Every Uninstall entry that has a DisplayName, from both registry views,
/// with its DisplayVersion. Blocks: call it off the async runtime.
pub fn uninstall_entries() -> Vec<UninstallEntry> {
    let hklm = RegKey::predef(HKEY_LOCAL_MACHINE);
    let mut entries = Vec::new();
    for root in UNINSTALL_KEYS {
        let Ok(uninstall) = hklm.open_subkey_with_flags(root, READ) else {
            continue;
        };
        for name in uninstall.enum_keys().flatten() {
            let Ok(entry) = uninstall.open_subkey_with_flags(&name, READ) else {
                continue;
            };
            let Ok(display_name) = entry.get_value::<String, _>("DisplayName") else {
                continue;
            };
            entries.push(UninstallEntry {
                display_name,
                display_version: entry.get_value::<String, _>("DisplayVersion").ok(),
                publisher: entry.get_value::<String, _>("Publisher").ok(),
            });
        }
    }
    entries
}

/// The highest DisplayVersion among Uninstall entries whose DisplayName
/// matches; not installed when none does.
pub async fn uninstall_version(display_name: Pattern) -> ProbedVersion {
    tokio::task::spawn_blocking(move || {
        discovery::highest_version(&uninstall_entries(), |entry| {
            display_name.extract(&entry.display_name).is_some()
        })
    })
    .await
    .unwrap_or_else(|e| ProbedVersion::Unknown(format!("registry probe failed: {e}")))
}

/// The highest DisplayVersion among Uninstall entries `discovery::classify`
/// gives `role`.
pub async fn discovered_version(role: Role) -> ProbedVersion {
    tokio::task::spawn_blocking(move || {
        discovery::highest_version(&uninstall_entries(), |entry| entry.role() == Some(role))
    })
    .await
    .unwrap_or_else(|e| ProbedVersion::Unknown(format!("registry probe failed: {e}")))
}

/// The client's database profiles, machine-wide and of every loaded user
/// hive, cleaned and bounded. A profile that cannot be read is left out: the
/// controller then says the client names no server, which is the truth as
/// far as the agent can tell.
pub async fn database_profiles() -> Vec<DatabaseProfile> {
    tokio::task::spawn_blocking(|| discovery::normalise_profiles(&raw_profiles()))
        .await
        .unwrap_or_default()
}

fn raw_profiles() -> Vec<RawProfile> {
    let mut found = Vec::new();
    let hklm = RegKey::predef(HKEY_LOCAL_MACHINE);
    for path in PROFILE_KEYS {
        if let Ok(key) = hklm.open_subkey_with_flags(path, READ) {
            read_profiles(&key, &mut found);
        }
    }
    // A user's own profiles live in their hive, loaded while they are
    // logged on (or a service runs as them); the others cannot be read.
    let users = RegKey::predef(HKEY_USERS);
    for sid in users
        .enum_keys()
        .flatten()
        .filter(|name| discovery::is_user_hive(name))
    {
        if let Ok(key) = users.open_subkey_with_flags(format!(r"{sid}\{}", PROFILE_KEYS[0]), READ) {
            read_profiles(&key, &mut found);
        }
    }
    found
}

/// `HostIP` and `DatabaseName` directly under `DatabaseProfiles` and under
/// each of its subkeys (one per profile): clients have written both.
fn read_profiles(key: &RegKey, found: &mut Vec<RawProfile>) {
    found.extend(profile_values(key));
    for name in key.enum_keys().flatten() {
        if found.len() >= discovery::MAX_RAW_PROFILES {
            return;
        }
        if let Ok(profile) = key.open_subkey_with_flags(&name, READ) {
            found.extend(profile_values(&profile));
        }
    }
}

fn profile_values(key: &RegKey) -> Option<RawProfile> {
    let host = key.get_value::<String, _>("HostIP").ok();
    let database = key.get_value::<String, _>("DatabaseName").ok();
    (host.is_some() || database.is_some()).then_some(RawProfile { host, database })
}

/// A DWORD value under HKLM: non-zero is yes, zero or absent is no.
pub async fn registry_flag(key: String, value: String) -> Check {
    tokio::task::spawn_blocking(move || {
        let path = key
            .strip_prefix(r"HKLM\")
            .or_else(|| key.strip_prefix(r"HKEY_LOCAL_MACHINE\"))
            .unwrap_or(&key);
        let hklm = RegKey::predef(HKEY_LOCAL_MACHINE);
        match hklm.open_subkey_with_flags(path, KEY_READ) {
            Ok(opened) => Check::from(opened.get_value::<u32, _>(&value).is_ok_and(|v| v != 0)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::No,
            Err(_) => Check::Unknown,
        }
    })
    .await
    .unwrap_or(Check::Unknown)
}

/// The fixed file version of an executable or DLL (VS_FIXEDFILEINFO).
pub async fn file_version(path: PathBuf) -> ProbedVersion {
    tokio::task::spawn_blocking(move || {
        if !path.exists() {
            return ProbedVersion::NotInstalled;
        }
        match fixed_file_version(&path) {
            Ok(version) => ProbedVersion::Installed(version),
            Err(why) => ProbedVersion::Unknown(format!("{}: {why}", path.display())),
        }
    })
    .await
    .unwrap_or_else(|e| ProbedVersion::Unknown(format!("file version probe failed: {e}")))
}

#[allow(unsafe_code)]
fn fixed_file_version(path: &std::path::Path) -> Result<Version, String> {
    use std::os::windows::ffi::OsStrExt;
    use windows_sys::Win32::Storage::FileSystem::{
        GetFileVersionInfoSizeW, GetFileVersionInfoW, VerQueryValueW, VS_FIXEDFILEINFO,
    };

    let wide: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
    let root: Vec<u16> = "\\".encode_utf16().chain(Some(0)).collect();
    // SAFETY: `wide` and `root` are NUL-terminated UTF-16 strings that outlive
    // the calls; `buffer` is allocated with the size the first call reports and
    // VerQueryValueW returns a pointer into it, read only while it lives.
    unsafe {
        let mut handle = 0u32;
        let size = GetFileVersionInfoSizeW(wide.as_ptr(), &mut handle);
        if size == 0 {
            return Err("the file has no version resource".into());
        }
        let mut buffer = vec![0u8; size as usize];
        if GetFileVersionInfoW(wide.as_ptr(), 0, size, buffer.as_mut_ptr().cast()) == 0 {
            return Err("cannot read the version resource".into());
        }
        let mut info: *mut core::ffi::c_void = std::ptr::null_mut();
        let mut len = 0u32;
        if VerQueryValueW(buffer.as_ptr().cast(), root.as_ptr(), &mut info, &mut len) == 0
            || info.is_null()
            || (len as usize) < std::mem::size_of::<VS_FIXEDFILEINFO>()
        {
            return Err("the version resource has no fixed file info".into());
        }
        let fixed = &*(info as *const VS_FIXEDFILEINFO);
        Ok(Version::new(
            fixed.dwFileVersionMS >> 16,
            fixed.dwFileVersionMS & 0xffff,
            fixed.dwFileVersionLS >> 16,
            fixed.dwFileVersionLS & 0xffff,
        ))
    }
}
