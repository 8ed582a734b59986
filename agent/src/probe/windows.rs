//! Windows probes: the Uninstall registry entries, executable file versions
//! and DWORD flags. Registry and file-version calls block, so they run on the
//! blocking pool.

use crate::config::Pattern;
use std::path::PathBuf;
use tierwise_common::{Check, ProbedVersion, Version};
use winreg::enums::{HKEY_LOCAL_MACHINE, KEY_READ};
use winreg::RegKey;

const UNINSTALL_KEYS: [&str; 2] = [
    r"SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall",
    r"SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall",
];

/// The highest DisplayVersion among Uninstall entries whose DisplayName
/// matches; not installed when none does.
pub async fn uninstall_version(display_name: Pattern) -> ProbedVersion {
    tokio::task::spawn_blocking(move || {
        let hklm = RegKey::predef(HKEY_LOCAL_MACHINE);
        let mut best: Option<Version> = None;
        let mut error = None;
        for root in UNINSTALL_KEYS {
            let Ok(uninstall) = hklm.open_subkey_with_flags(root, KEY_READ) else {
                continue;
            };
            for name in uninstall.enum_keys().flatten() {
                let Ok(entry) = uninstall.open_subkey_with_flags(&name, KEY_READ) else {
                    continue;
                };
                let Ok(shown) = entry.get_value::<String, _>("DisplayName") else {
                    continue;
                };
                if display_name.extract(&shown).is_none() {
                    continue;
                }
                match entry.get_value::<String, _>("DisplayVersion") {
                    Ok(text) => match Version::parse(text.trim()) {
                        Ok(version) => best = best.max(Some(version)),
                        Err(e) => {
                            error = Some(format!("Uninstall entry `{shown}`: DisplayVersion: {e}"))
                        }
                    },
                    Err(e) => {
                        error = Some(format!(
                            "Uninstall entry `{shown}` has no DisplayVersion: {e}"
                        ))
                    }
                }
            }
        }
        match (best, error) {
            (Some(version), _) => ProbedVersion::Installed(version),
            (None, Some(error)) => ProbedVersion::Unknown(error),
            (None, None) => ProbedVersion::NotInstalled,
        }
    })
    .await
    .unwrap_or_else(|e| ProbedVersion::Unknown(format!("registry probe failed: {e}")))
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
