//! The operator CLI: subcommands that talk to a running controller.

pub mod args;
pub mod artifacts;
pub mod audit;
pub mod history;
pub mod hosts;
pub mod installations;
pub mod keys;
pub mod metadata;
pub mod notify;
pub mod plan;
pub mod policy;
pub mod rollout;
pub mod run;
pub mod security;
pub mod table;
pub mod watch;
pub mod windows;

use std::path::{Path, PathBuf};
use std::time::Duration;
use tierwise_proto::v1::admin_service_client::AdminServiceClient;
use tierwise_proto::MAX_ADMIN_MESSAGE_BYTES;
use tierwise_transport::client::{client_config, ControllerAddress, Trust};
use tierwise_transport::files;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The admin API client the CLI uses: TLS to the controller, the operator's
/// token on every call.
pub type AdminClient = AdminServiceClient<InterceptedService<Channel, Bearer>>;

/// Where the controller is and how the CLI proves who it is.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// `https://HOST[:PORT]`.
    pub controller: String,
    /// The controller's CA certificate; default: the one in the default data
    /// directory, when this machine runs the controller.
    pub ca_cert: Option<PathBuf>,
    /// The operator token itself (from `TIERWISE_TOKEN`).
    pub token: Option<String>,
    /// A file holding the operator token; default: the first
    /// administrator's token in the default data directory, when readable.
    pub token_file: Option<PathBuf>,
}

/// Where the CLI talks to when nothing says otherwise.
pub const DEFAULT_CONTROLLER: &str = "https://127.0.0.1:7700";

impl Connection {
    /// `tierwise` with the flags that reach this controller again (the
    /// token itself is never repeated), to say the command to run next.
    pub fn command_prefix(&self) -> String {
        let quoted = |text: String| {
            if text.contains(|c: char| c.is_whitespace() || c == '\'') {
                format!("'{}'", text.replace('\'', "'\\''"))
            } else {
                text
            }
        };
        let mut words = vec!["tierwise".to_owned()];
        if self.controller != DEFAULT_CONTROLLER {
            words.push(format!("--controller {}", quoted(self.controller.clone())));
        }
        if let Some(path) = &self.ca_cert {
            words.push(format!("--ca-cert {}", quoted(path.display().to_string())));
        }
        if let Some(path) = &self.token_file {
            words.push(format!(
                "--token-file {}",
                quoted(path.display().to_string())
            ));
        }
        words.join(" ")
    }

    fn ca_cert_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.ca_cert {
            return Ok(path.clone());
        }
        let local = crate::pki::ca_cert_path(&crate::paths::default_data_dir());
        if local.exists() {
            return Ok(local);
        }
        anyhow::bail!(
            "no CA certificate to check the controller with: pass --ca-cert FILE or set TIERWISE_CA_CERT \
             (`tierwise pki show` on the controller prints it)"
        )
    }

    fn token(&self) -> anyhow::Result<String> {
        if let Some(token) = self.token.as_deref().filter(|t| !t.trim().is_empty()) {
            return Ok(token.trim().to_owned());
        }
        let (path, explicit) = match &self.token_file {
            Some(path) => (path.clone(), true),
            None => (
                crate::server::admin_token_path(&crate::paths::default_data_dir()),
                false,
            ),
        };
        match read_token(&path) {
            Ok(token) => Ok(token),
            Err(error) if explicit => Err(error),
            Err(_) => anyhow::bail!(
                "no operator token: set TIERWISE_TOKEN or pass --token-file FILE \
                 (an administrator issues one with `tierwise operators add NAME --role ROLE`)"
            ),
        }
    }
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = files::read(path)?;
    let token = text.trim();
    anyhow::ensure!(!token.is_empty(), "{} is empty", path.display());
    Ok(token.to_owned())
}

/// Puts `authorization: Bearer TOKEN` on every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(…)")
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// Connects to the controller's admin API over TLS, with errors that say
/// what to check.
pub async fn connect(connection: &Connection) -> anyhow::Result<AdminClient> {
    let controller = connection.controller.as_str();
    let address: ControllerAddress = controller
        .parse()
        .map_err(|e| anyhow::anyhow!("{e} (set it with --controller or TIERWISE_CONTROLLER)"))?;
    let ca_path = connection.ca_cert_path()?;
    let ca = files::read_certificates(&ca_path)?;
    let token = connection.token()?;
    let bearer = MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| anyhow::anyhow!("the operator token holds characters a token cannot have"))?;
    let config = client_config(&Trust::Ca(ca), None)?;
    let channel = address
        .connect(config, |e| {
            e.connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(60))
        })
        .await
        .map_err(|e| {
            let cause = tierwise_runtime::report::error_chain(&e);
            if cause.contains("not valid for name") {
                return anyhow::anyhow!(
                    "cannot reach the controller at {address}: {cause}. Use one of those names, \
                     or start the controller with --tls-name for this one"
                );
            }
            anyhow::anyhow!(
                "cannot reach the controller at {address}: {cause}. Is `tierwise serve` running there, \
                 and is {} its CA certificate? Set the address with --controller or TIERWISE_CONTROLLER",
                ca_path.display()
            )
        })?;
    Ok(
        AdminServiceClient::with_interceptor(channel, Bearer(bearer))
            .max_decoding_message_size(MAX_ADMIN_MESSAGE_BYTES),
    )
}

/// A `--json` document whose keys are in alphabetical order, as the
/// documented output of `tokens list`, `operators list` and `audit` has
/// always been.
pub fn sorted_json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(&serde_json::to_value(value)?)? + "\n")
}

/// A call the controller refused: its reason for people, and for a
/// `--json` error the status code and the gRPC method.
#[derive(Debug, thiserror::Error)]
#[error("the controller refused: {message}")]
pub struct Refused {
    pub message: String,
    /// The gRPC status code, snake_case (`permission_denied`).
    pub code: String,
    /// The method refused by authorisation (`StartRollout`), when the
    /// controller names it.
    pub method: Option<String>,
}

/// Adds, beside each of `fields` (Unix milliseconds, kept for scripts that
/// read them), its RFC 3339 UTC twin named without `_ms` (`created_ms` →
/// `created`, as `hosts` and `rollout` name their times); `null` stays
/// `null`. Works on one object or on an array of them.
pub fn with_time_twins(mut value: serde_json::Value, fields: &[&str]) -> serde_json::Value {
    let add = |object: &mut serde_json::Map<String, serde_json::Value>| {
        for field in fields {
            let Some(twin) = field.strip_suffix("_ms") else {
                continue;
            };
            let time = object
                .get(*field)
                .and_then(serde_json::Value::as_i64)
                .map(tierwise_runtime::clock::rfc3339);
            if object.contains_key(*field) {
                object.insert(twin.to_owned(), time.into());
            }
        }
    };
    match &mut value {
        serde_json::Value::Array(items) => items
            .iter_mut()
            .filter_map(serde_json::Value::as_object_mut)
            .for_each(add),
        serde_json::Value::Object(object) => add(object),
        _ => {}
    }
    value
}

/// Turns a gRPC status from the controller into an error that reads well.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    let method = status
        .metadata()
        .get(crate::grpc::auth::METHOD_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    anyhow::Error::new(Refused {
        message: status.message().to_owned(),
        code: snake_case(&format!("{:?}", status.code())),
        method,
    })
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// An error as one JSON object, for commands run with `--json`:
/// `{"error": {"message", "code", "method"}}` (`code` and `method` only
/// when the controller refused the call, `method` only when authorisation
/// refused it).
pub fn error_json(error: &anyhow::Error) -> String {
    let message = tierwise_runtime::report::error_chain(error.as_ref());
    let refused = error.downcast_ref::<Refused>();
    let mut body = serde_json::json!({ "message": message });
    if let Some(refused) = refused {
        body["code"] = refused.code.clone().into();
        if let Some(method) = &refused.method {
            body["method"] = method.clone().into();
        }
    }
    serde_json::json!({ "error": body }).to_string()
}
