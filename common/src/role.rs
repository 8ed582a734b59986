//! Component roles, in the order the vendor requires them to be updated.

use std::fmt;
use std::str::FromStr;

/// What a component on a host is. Databases are not a role: they are facts of
/// the primary `server`, whose Server Manager manages them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Role {
    /// Application server running the Server Manager, server and backup services.
    Server,
    /// A further application server of a multi-tier installation.
    AppServer,
    /// A web server hosting the Web Application.
    Web,
    /// The Windows application and its add-ons.
    Client,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`; expected one of: server, app_server, web, client")]
pub struct RoleParseError(pub String);

impl Role {
    /// Every role, in update order.
    pub const ALL: [Role; 4] = [Role::Server, Role::AppServer, Role::Web, Role::Client];

    /// The name used in configuration files, the CLI, JSON output and the store.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = RoleParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| RoleParseError(text.into()))
    }
}

crate::serde_as_text!(Role);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_is_update_order() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!(Role::Server < Role::AppServer && Role::AppServer < Role::Web);
        assert!(Role::Web < Role::Client);
    }

    #[test]
    fn unknown_role_lists_the_valid_ones() {
        let err = "database".parse::<Role>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown role `database`; expected one of: server, app_server, web, client"
        );
    }
}
