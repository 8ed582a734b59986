//! Shell completions and man pages, generated from a program's clap
//! definition, so they always say what the program accepts.

use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// Writes `text` to stdout; a reader that went away (`| head`) is no
/// error.
pub fn print_out(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The completion script of `command` for `shell`.
pub fn completions(command: &mut clap::Command, shell: Shell) -> String {
    let name = command.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(shell, command, name, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes one man page (section 1) per command and subcommand into `dir`:
/// `tierwise.1`, `tierwise-rollout.1`, `tierwise-rollout-start.1`, ...
/// Returns the files written.
pub fn man_pages(command: &clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut command = command.clone();
    command.build();
    let mut written = Vec::new();
    write_pages(&command, command.get_name(), dir, &mut written)?;
    Ok(written)
}

fn write_pages(
    command: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let page = command.clone().name(name.to_owned());
    let mut text = Vec::new();
    clap_mangen::Man::new(page).render(&mut text)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, text)?;
    written.push(path);
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

/// Every option, positional argument and subcommand of `command` (and of
/// its subcommands, recursively) that has no description, as the path a
/// person types to reach it (`tierwise rollout start --to`). Help and
/// version flags clap adds itself are not looked at.
pub fn undocumented(command: &clap::Command) -> Vec<String> {
    let mut missing = Vec::new();
    walk_undocumented(command, command.get_name(), &mut missing);
    missing
}

fn walk_undocumented(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
    let empty = |text: Option<&clap::builder::StyledStr>| {
        text.is_none_or(|t| t.to_string().trim().is_empty())
    };
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") || arg.is_hide_set() {
            continue;
        }
        if empty(arg.get_help()) && empty(arg.get_long_help()) {
            let name = arg
                .get_long()
                .map(|l| format!("--{l}"))
                .unwrap_or_else(|| id.to_uppercase());
            missing.push(format!("{path} {name}"));
        }
    }
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let sub_path = format!("{path} {}", sub.get_name());
        if empty(sub.get_about()) && empty(sub.get_long_about()) {
            missing.push(sub_path.clone());
        }
        walk_undocumented(sub, &sub_path, missing);
    }
}
