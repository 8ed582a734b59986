//! Windows: the agent's state directory readable by SYSTEM and
//! Administrators only. `%ProgramData%` lets every local user read what is
//! created below it, and the state directory holds the agent's private key.

use std::path::Path;
use windows_sys::Win32::Foundation::LocalFree;
use windows_sys::Win32::Security::Authorization::{
    ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    SetFileSecurityW, DACL_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR,
};

/// Full control for SYSTEM and the Administrators group, inherited by
/// everything below; nothing inherited from above (protected).
const OWNERS_ONLY: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";

/// Sets the owners-only DACL on `dir` and on everything already in it (new
/// files inherit it).
#[allow(unsafe_code)]
pub fn restrict_to_owners(dir: &Path) -> std::io::Result<()> {
    use std::os::windows::ffi::OsStrExt;
    let sddl: Vec<u16> = OWNERS_ONLY.encode_utf16().chain(Some(0)).collect();
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated UTF-16 that outlives the call; on
    // success the system allocates the descriptor, freed below with
    // LocalFree exactly once.
    let converted = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    if converted == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut paths = vec![dir.to_path_buf()];
    let mut result = Ok(());
    while let Some(path) = paths.pop() {
        if path.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                paths.extend(entries.flatten().map(|e| e.path()));
            }
        }
        let wide: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
        // SAFETY: `wide` is a NUL-terminated path and `descriptor` a valid
        // self-relative descriptor for the duration of the call.
        let set = unsafe {
            SetFileSecurityW(
                wide.as_ptr(),
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                descriptor,
            )
        };
        if set == 0 && result.is_ok() {
            result = Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
    unsafe {
        LocalFree(descriptor);
    }
    result
}
