//! `ave config`: create and inspect AVE configuration files.
//!
//! `init` and `bootstrap` print `Created <path>` on stdout for each file written and
//! `ave config: kept <path> (it exists)` on stderr for each file left alone, and exit 3
//! with `ave config: error: could not bootstrap: <why>` on failure (the original
//! `ave-config`'s code). `show` and `etc` exit 1 on failure, 2 on usage errors.

use std::{
    error::Error as StdError,
    io::{self, BufRead, IsTerminal as _, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use ave::config::{self as cfg, Authkeys, BrokerConfig, DEFAULT_FILES, ETC_USER_PATH};
use serde_json::{Value, json};

use crate::chain;

/// The `ave config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Write the default configuration files that do not exist yet.
    #[command(after_help = INIT_EXIT_CODES)]
    Init {
        /// The home directory to write `.ave/config` under (default: yours); it must exist.
        #[arg(long, value_name = "DIR")]
        home: Option<PathBuf>,
    },
    /// Show the configuration files and whether they load.
    #[command(after_help = EXIT_CODES)]
    Show {
        /// The home directory to read `.ave/config` from (default: yours).
        #[arg(long, value_name = "DIR")]
        home: Option<PathBuf>,
        /// Print one JSON object instead of the text report.
        #[arg(long)]
        json: bool,
    },
    /// Create `/etc/ave/user`, naming the user AVE services run as. Without --user, shows
    /// the user it names, or asks for one when stdin is a terminal.
    #[command(after_help = EXIT_CODES)]
    Etc {
        /// Where to write the file.
        #[arg(long, value_name = "PATH")]
        path: Option<PathBuf>,
        /// The user name.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// Become the user and write their default configuration files (as root).
    #[command(after_help = INIT_EXIT_CODES)]
    Bootstrap {
        /// The user name.
        #[arg(long, value_name = "NAME")]
        user: String,
    },
}

/// The original `ave-config`'s exit code when bootstrapping fails.
const BOOTSTRAP_FAILED: u8 = 3;

/// The exit codes of `init` and `bootstrap`, for their `--help`.
const INIT_EXIT_CODES: &str = "\
Exit status:
  0  every file exists now (each one written is printed on stdout)
  2  usage error
  3  could not bootstrap (the reason is on stderr)";

/// The exit codes of `show` and `etc`, for their `--help`.
const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  a file is missing or does not load, or the file cannot be written
  2  usage error";

pub(crate) fn main(command: Command) -> anyhow::Result<ExitCode> {
    Ok(match command {
        Command::Init { home } => init(home),
        Command::Show { home, json } => show(home, json),
        Command::Etc { path, user } => etc(path, user),
        Command::Bootstrap { user } => bootstrap(&user),
    })
}

fn init(home: Option<PathBuf>) -> ExitCode {
    let result = match home {
        // A home that does not exist is a typo more often than a wish: say so instead of
        // creating the whole path.
        Some(home) if !home.is_dir() => {
            Err(Box::<dyn StdError>::from(format!("--home {}: no such directory", home.display())))
        }
        Some(home) => Ok(home),
        None => ave::persona::current_user().map(|u| u.home).map_err(Box::from),
    }
    .and_then(|home| cfg::create_default(&home).map_err(Box::from));
    report_created(result)
}

fn bootstrap(user: &str) -> ExitCode {
    // The process has one thread here (no runtime, no logging thread), as become_user
    // requires.
    let result = ave::persona::become_user(user)
        .map_err(Box::<dyn StdError>::from)
        .and_then(|home| cfg::create_default(&home).map_err(Box::from));
    report_created(result)
}

type Created = (Vec<PathBuf>, Vec<PathBuf>);

fn report_created(result: Result<Created, Box<dyn StdError>>) -> ExitCode {
    match result {
        Ok((created, kept)) => {
            for path in kept {
                eprintln!("ave config: kept {} (it exists)", path.display());
            }
            for path in created {
                println!("Created {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ave config: error: could not bootstrap: {}", chain(e.as_ref()));
            ExitCode::from(BOOTSTRAP_FAILED)
        }
    }
}

fn show(home: Option<PathBuf>, json: bool) -> ExitCode {
    let given = home.is_some();
    let home = match home {
        Some(home) => home,
        None => match ave::persona::current_user() {
            Ok(user) => user.home,
            Err(e) => return fail(&e),
        },
    };
    let dir = cfg::config_dir(&home);
    let mut names: Vec<String> = DEFAULT_FILES.iter().map(|n| (*n).to_owned()).collect();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut extra: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.') && !names.contains(n))
            .collect();
        extra.sort();
        names.extend(extra);
    }
    let files: Vec<(PathBuf, Status, Option<u32>)> = names
        .iter()
        .map(|name| {
            let path = dir.join(name);
            let status = file_status(name, &path);
            let exposed =
                if name == "authkeys.json" { cfg::key_file_exposure(&path) } else { Ok(None) };
            (path, status, exposed.ok().flatten())
        })
        .collect();
    let etc = cfg::load_etc();
    let missing = files.iter().filter(|(_, s, _)| matches!(s, Status::Missing)).count();
    let broken = files.iter().filter(|(_, s, _)| matches!(s, Status::Invalid(_))).count();
    let hint = (missing > 0).then(|| {
        let flag = if given { format!(" --home {}", home.display()) } else { String::new() };
        format!("ave config init{flag}")
    });
    if json {
        let files: Vec<Value> = files
            .iter()
            .map(|(path, status, exposed)| {
                let (status, detail) = match status {
                    Status::Ok(summary) => ("ok", summary.clone()),
                    Status::Missing => ("missing", None),
                    Status::Invalid(why) => ("invalid", Some(why.clone())),
                };
                json!({
                    "path": path,
                    "status": status,
                    "detail": detail,
                    "mode_readable_by_others": exposed.map(|m| format!("{m:04o}")),
                })
            })
            .collect();
        let etc = match &etc {
            Ok(user) => json!({
                "path": ETC_USER_PATH,
                "user": {"name": user.name, "home": user.home, "uid": user.uid},
                "problem": null,
            }),
            Err(e) => json!({"path": ETC_USER_PATH, "user": null, "problem": etc_problem(e)}),
        };
        let report = json!({"dir": dir, "files": files, "etc": etc, "create_missing_with": hint});
        println!("{report}");
    } else {
        println!("configuration of {}", dir.display());
        for (path, status, exposed) in &files {
            match status {
                Status::Ok(Some(summary)) => println!("  {}: ok ({summary})", path.display()),
                Status::Ok(None) => println!("  {}: ok", path.display()),
                Status::Missing => println!("  {}: missing", path.display()),
                Status::Invalid(why) => println!("  {}: INVALID: {why}", path.display()),
            }
            if let Some(mode) = exposed {
                println!(
                    "  {0}: WARNING: readable by others (mode {mode:04o}); run \"chmod 600 {0}\"",
                    path.display()
                );
            }
        }
        match &etc {
            Ok(user) => println!(
                "{ETC_USER_PATH}: names the user \"{}\" (home {}, uid {})",
                user.name,
                user.home.display(),
                user.uid
            ),
            Err(e) => println!("{ETC_USER_PATH}: {}", etc_problem(e)),
        }
        if let Some(command) = hint {
            println!("run \"{command}\" to create the missing files with default values");
        }
    }
    if missing + broken == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

enum Status {
    /// Loads; a short description of what matters in it.
    Ok(Option<String>),
    Missing,
    Invalid(String),
}

fn file_status(name: &str, path: &Path) -> Status {
    let object = match cfg::load(path) {
        Ok(object) => object,
        Err(cfg::Error::Missing { .. }) => return Status::Missing,
        Err(e) => return Status::Invalid(chain(&e)),
    };
    match name {
        "authkeys.json" => match Authkeys::from_object(path, object) {
            Ok(keys) => {
                let accounts: Vec<String> = keys
                    .iter()
                    .map(|(a, k)| if k.is_some() { a.to_owned() } else { format!("{a} (no key)") })
                    .collect();
                Status::Ok(Some(format!("accounts: {}", accounts.join(", "))))
            }
            Err(e) => Status::Invalid(chain(&e)),
        },
        "broker.json" => match BrokerConfig::from_object(path, object) {
            Ok(broker) => Status::Ok(Some(format!("broker at {}:{}", broker.host, broker.port))),
            Err(e) => Status::Invalid(chain(&e)),
        },
        _ => Status::Ok(None),
    }
}

/// What is wrong with `/etc/ave/user`, without repeating its path.
fn etc_problem(e: &cfg::Error) -> String {
    match e {
        cfg::Error::LoadEtc { source, .. } if matches!(**source, cfg::Error::EtcMissing { .. }) => {
            "does not exist (AVE services need it; create it with \"ave config etc\" as root)"
                .to_owned()
        }
        cfg::Error::LoadEtc { source, .. } => chain(source.as_ref()),
        other => chain(other),
    }
}

fn etc(path: Option<PathBuf>, user: Option<String>) -> ExitCode {
    let path = path.unwrap_or_else(|| PathBuf::from(ETC_USER_PATH));
    let user = match user {
        Some(user) => user,
        None => {
            if let Ok(found) = cfg::load_etc_at(&path) {
                println!(
                    "{} names the user \"{}\" (home {}, uid {})",
                    path.display(),
                    found.name,
                    found.home.display(),
                    found.uid
                );
                return ExitCode::SUCCESS;
            }
            // Fail before asking rather than after.
            let root = ave::persona::current_user().is_ok_and(|u| u.uid == 0);
            if path == Path::new(ETC_USER_PATH) && !root {
                return fail(&cfg::Error::MustBeRoot);
            }
            if !io::stdin().is_terminal() {
                eprintln!(
                    "ave config: error: {} does not name a user yet; give one with --user NAME \
                     (nothing was asked: stdin is not a terminal)",
                    path.display()
                );
                return ExitCode::from(2);
            }
            match prompt_user(&path) {
                Ok(user) => user,
                Err(e) => return fail(&e),
            }
        }
    };
    match cfg::create_etc(&path, &user) {
        Ok(done) => {
            let u = &done.user;
            if done.created {
                println!(
                    "Created {} (user \"{}\", home {}, uid {})",
                    path.display(),
                    u.name,
                    u.home.display(),
                    u.uid
                );
            } else {
                println!("{} already names the user \"{}\", unchanged", path.display(), u.name);
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Asks for the user name on the terminal, as the original did.
fn prompt_user(path: &Path) -> io::Result<String> {
    let mut err = io::stderr().lock();
    writeln!(err, "{} names the user that AVE services run as.", path.display())?;
    writeln!(err, "They find their configuration files in that user's home directory.")?;
    write!(err, "Type a valid user name and press return: ")?;
    err.flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    let user = line.trim();
    if user.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no user name given"));
    }
    Ok(user.to_owned())
}

fn fail(e: &dyn StdError) -> ExitCode {
    eprintln!("ave config: error: {}", chain(e));
    ExitCode::FAILURE
}

/// A configuration error as the command line explains it: a missing file names the
/// command that creates it (the library's text names the original's `ave-config`).
pub(crate) fn explain(e: &cfg::Error) -> String {
    match e {
        cfg::Error::Missing { path, .. } => {
            let home = path.parent().and_then(Path::parent).and_then(Path::parent);
            let flag = home.map(|h| format!(" --home {}", h.display())).unwrap_or_default();
            format!(
                "no such configuration file: {} (\"ave config init{flag}\" creates it with \
                 default values)",
                path.display()
            )
        }
        other => chain(other),
    }
}
