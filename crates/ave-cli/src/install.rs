//! What the Debian package installs besides the binary: shell completions
//! (`ave completions bash|zsh|fish`) and man pages (`ave man --dir DIR`, hidden: the
//! packaging step runs it).

use std::{io::Write as _, path::PathBuf, process::ExitCode};

use anyhow::Context as _;

/// The shells `ave completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Shell {
    /// Bash (install as `/usr/share/bash-completion/completions/ave`).
    Bash,
    /// Zsh (install as `_ave` in a folder of `$fpath`).
    Zsh,
    /// Fish (install as `/usr/share/fish/vendor_completions.d/ave.fish`).
    Fish,
}

/// Arguments of `ave completions`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Arguments of `ave man`.
#[derive(Debug, clap::Args)]
pub(crate) struct ManArgs {
    /// The folder to write `ave.1` and one `ave-<subcommand>.1` per subcommand into.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

/// Writes the completion script for a shell on stdout.
pub(crate) fn completions(args: CompletionsArgs, mut command: clap::Command) -> ExitCode {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "ave", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`ave completions bash | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ave completions: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the man pages of `command` and of each of its subcommands (recursively) into
/// the folder; prints each file written.
pub(crate) fn man(args: ManArgs, command: clap::Command) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let mut command = command;
    command.build();
    write_pages(&command, "ave", &args.dir)?;
    Ok(ExitCode::SUCCESS)
}

fn write_pages(command: &clap::Command, name: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let page = command.clone().display_name(name.to_owned());
    let mut text = Vec::new();
    clap_mangen::Man::new(page).render(&mut text).with_context(|| format!("render {name}.1"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    println!("{}", path.display());
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
