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
