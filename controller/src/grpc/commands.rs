//! The command a person types for each `AdminService` method, so that a
//! refusal names what they did (`rollout start needs the operator role`)
//! rather than the wire's method; logs, the audit log and `--json` errors
//! keep the method.

/// The `tierwise` command (without the program name) that makes `method`;
/// the method itself for one no command makes.
pub fn command_of(method: &str) -> &str {
    match method {
        "ListHosts" => "hosts list",
        "GetHost" => "hosts show",
        "RefreshInventory" => "hosts refresh",
        "RevokeHost" => "hosts revoke",
        "GetHostHistory" => "hosts history",
        "GetCatalogue" => "releases list",
        "ImportCatalogue" => "releases import",
        "GetReleaseMetadata" => "releases metadata show",
        "ImportReleaseMetadata" => "releases metadata import",
        "ListWindows" => "windows list",
        "SetWindow" => "windows set",
        "RemoveWindow" => "windows remove",
        "GetInstallation" => "installations show",
        "SetInstallation" => "installations set",
        "ListAddressMappings" => "installations maps",
        "MapAddress" => "installations map",
        "UnmapAddress" => "installations unmap",
        "ListLicences" => "license show",
        "SetLicence" => "license set",
        "PlanRollout" => "rollout plan",
        "StartRollout" => "rollout start",
        "ListRollouts" => "rollout list",
        "GetRollout" => "rollout status",
        "ChangeRollout" => "changing a rollout (rollout pause, resume, abort, approve, skip, done)",
        "UploadArtifact" => "artifacts add",
        "ListArtifacts" => "artifacts list",
        "RemoveArtifacts" => "artifacts remove",
        "ListAudit" => "audit",
        "VerifyAudit" => "audit verify",
        "WhoAmI" => "whoami",
        "CreateToken" => "tokens create",
        "ListTokens" => "tokens list",
        "RevokeToken" => "tokens revoke",
        "AddOperator" => "operators add",
        "ListOperators" => "operators list",
        "RemoveOperator" => "operators remove",
        "RotateOperator" => "operators rotate",
        "AddNotification" => "notify add",
        "ListNotifications" => "notify list",
        "RemoveNotification" => "notify remove",
        "TestNotification" => "notify test",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A method added to the admin service gets the command that makes it
    /// here, or its refusals would name the wire's method again.
    #[test]
    fn every_admin_method_has_its_command() {
        let proto = include_str!("../../../proto/proto/tierwise.proto");
        let admin = proto
            .split("service AdminService")
            .nth(1)
            .and_then(|rest| rest.split("\n}").next())
            .unwrap_or_default();
        let methods: Vec<&str> = admin
            .lines()
            .filter_map(|line| line.trim().strip_prefix("rpc "))
            .map(|rest| rest.split('(').next().unwrap_or_default().trim())
            .collect();
        assert!(methods.len() > 20, "found only {methods:?}");
        for method in methods {
            assert_ne!(command_of(method), method, "{method} names no command");
        }
        assert_eq!(command_of("StartRollout"), "rollout start");
    }
}
