//! Identifiers that come from outside (host ids, installation names).

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} `{value}` is longer than {max} characters")]
    TooLong {
        kind: &'static str,
        value: String,
        max: usize,
    },
    #[error("{kind} `{value}` contains `{bad}`; use letters, digits, `.`, `-` and `_` only")]
    BadCharacter {
        kind: &'static str,
        value: String,
        bad: char,
    },
}

/// Longest accepted identifier; a DNS name is at most 253 characters.
pub const MAX_NAME_LEN: usize = 253;

/// Accepts the identifiers Windows and DNS host names use: ASCII letters,
/// digits, `.`, `-`, `_`. `kind` names the field in the error ("host id").
pub fn validate_name(kind: &'static str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if value.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            kind,
            value: value.chars().take(40).collect::<String>() + "…",
            max: MAX_NAME_LEN,
        });
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(NameError::BadCharacter {
            kind,
            value: value.into(),
            bad,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_host_names_and_refuses_the_rest() {
        assert!(validate_name("host id", "srv-01.corp.example").is_ok());
        assert!(validate_name("host id", "CL_0042").is_ok());
        assert_eq!(
            validate_name("host id", "").unwrap_err().to_string(),
            "host id is empty"
        );
        assert!(validate_name("host id", "a b")
            .unwrap_err()
            .to_string()
            .contains("contains ` `"));
        assert!(validate_name("installation", &"x".repeat(300))
            .unwrap_err()
            .to_string()
            .contains("longer than 253"));
    }
}
