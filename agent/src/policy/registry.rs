//! Reads one root key (and its component subkeys) from HKLM into a `RawKey`.
//! A missing key is simply empty: Group Policy and the MSI write only what
//! an administrator set.

use super::layer::{expand, RawKey, RegValue};
use super::table::{role_subkey, COMPONENTS_SUBKEY};
use tierwise_common::Role;
use winreg::enums::{HKEY_LOCAL_MACHINE, KEY_READ};
use winreg::RegKey;

/// Every value under `HKLM\root` and `HKLM\root\Components\<Role>`.
pub fn read(root: &str) -> RawKey {
    let hklm = RegKey::predef(HKEY_LOCAL_MACHINE);
    let mut raw = RawKey::default();
    let mut subkeys = vec![String::new()];
    subkeys.extend(
        Role::ALL
            .iter()
            .map(|role| format!(r"{COMPONENTS_SUBKEY}\{}", role_subkey(*role))),
    );
    for subkey in subkeys {
        let path = if subkey.is_empty() {
            root.to_owned()
        } else {
            format!(r"{root}\{subkey}")
        };
        let Ok(key) = hklm.open_subkey_with_flags(&path, KEY_READ) else {
            continue;
        };
        for (name, value) in key.enum_values().flatten() {
            raw.insert(&subkey, &name, convert(&value));
        }
    }
    raw
}

fn convert(value: &winreg::RegValue) -> RegValue {
    use winreg::types::FromRegValue;
    match &value.vtype {
        winreg::enums::RegType::REG_SZ => String::from_reg_value(value).map_or_else(
            |_| RegValue::Other("REG_SZ (unreadable)".into()),
            RegValue::Text,
        ),
        winreg::enums::RegType::REG_EXPAND_SZ => String::from_reg_value(value).map_or_else(
            |_| RegValue::Other("REG_EXPAND_SZ (unreadable)".into()),
            |text| RegValue::Text(expand(&text, |name| std::env::var(name).ok())),
        ),
        winreg::enums::RegType::REG_DWORD => u32::from_reg_value(value).map_or_else(
            |_| RegValue::Other("REG_DWORD (unreadable)".into()),
            RegValue::Number,
        ),
        winreg::enums::RegType::REG_MULTI_SZ => Vec::<String>::from_reg_value(value).map_or_else(
            |_| RegValue::Other("REG_MULTI_SZ (unreadable)".into()),
            RegValue::Lines,
        ),
        other => RegValue::Other(format!("{other:?}")),
    }
}
