//! Reading a probe's text: a file, or the output of a program run without a
//! shell, with a time limit.

use crate::config::Source;
use std::process::Stdio;
use std::time::Duration;

/// Files and outputs larger than this are not version information.
const MAX_TEXT_BYTES: u64 = 1024 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum SourceText {
    /// The file does not exist.
    Absent,
    Text(String),
}

pub async fn read_source(source: &Source) -> Result<SourceText, String> {
    match source {
        Source::File(path) => {
            let metadata = match tokio::fs::metadata(path).await {
                Ok(metadata) => metadata,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(SourceText::Absent)
                }
                Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            };
            if metadata.len() > MAX_TEXT_BYTES {
                return Err(format!(
                    "{} is larger than {MAX_TEXT_BYTES} bytes",
                    path.display()
                ));
            }
            match tokio::fs::read(path).await {
                Ok(bytes) => Ok(SourceText::Text(
                    String::from_utf8_lossy(&bytes).into_owned(),
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SourceText::Absent),
                Err(e) => Err(format!("cannot read {}: {e}", path.display())),
            }
        }
        Source::Command { argv, timeout } => {
            run_command(argv, *timeout).await.map(SourceText::Text)
        }
    }
}

/// Runs `argv` (no shell), waits at most `timeout`, and returns its standard
/// output. A non-zero exit, a timeout or a program that cannot start is an
/// error that quotes the end of its standard error.
pub async fn run_command(argv: &[String], timeout: Duration) -> Result<String, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let run = async {
        // Both pipes are read at once (a full pipe would stall the program),
        // each at most MAX_TEXT_BYTES + 1, so a chatty program cannot fill
        // the agent's memory.
        let (out, err) = tokio::join!(read_limited(stdout), read_limited(stderr));
        let too_much = |read: &std::io::Result<Vec<u8>>| {
            read.as_ref().is_ok_and(|b| b.len() as u64 > MAX_TEXT_BYTES)
        };
        if too_much(&out) || too_much(&err) {
            // It would block on the full pipe until the timeout.
            let _ = child.start_kill();
        }
        let status = child.wait().await;
        (out, err, status)
    };
    let (stdout, stderr, status) = match tokio::time::timeout(timeout, run).await {
        Err(_) => {
            return Err(format!(
                "`{}` did not finish within {} s and was stopped",
                argv.join(" "),
                timeout.as_secs()
            ))
        }
        Ok(result) => result,
    };
    let status = status.map_err(|e| format!("`{program}` failed: {e}"))?;
    let stdout = stdout.map_err(|e| format!("reading the output of `{program}`: {e}"))?;
    let stderr = stderr.unwrap_or_default();
    if stdout.len() as u64 > MAX_TEXT_BYTES {
        return Err(format!(
            "`{}` printed more than {MAX_TEXT_BYTES} bytes; a version probe prints a line or two",
            argv.join(" ")
        ));
    }
    if !status.success() {
        let tail = tail(&String::from_utf8_lossy(&stderr), 300);
        return Err(format!(
            "`{}` exited with {}{}",
            argv.join(" "),
            status,
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            }
        ));
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

async fn read_limited<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<R>,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    if let Some(pipe) = pipe {
        pipe.take(MAX_TEXT_BYTES + 1)
            .read_to_end(&mut bytes)
            .await?;
    }
    Ok(bytes)
}

/// The last `max` characters of `text`, trimmed, on one line.
fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    let count = text.chars().count();
    let tail: String = text.chars().skip(count.saturating_sub(max)).collect();
    tail.replace(['\n', '\r'], " ")
}
