//! `ave config`: create and inspect AVE configuration files.
//!
//! `init` and `bootstrap` print the original `ave-config`'s lines (`WARNING: <path> exists,
//! skipped` for each skipped file first, then `Created <path>`) and exit 3 with
//! `ERROR: could not bootstrap: <why>` on failure. `show` and `etc` exit 1 on failure.

use std::{
    error::Error as StdError,
    io::{self, BufRead, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use ave::config::{self as cfg, Authkeys, BrokerConfig, DEFAULT_FILES, ETC_USER_PATH};

use crate::chain;

/// The `ave config` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Write the default configuration files that do not exist yet.
    Init {
        /// The home directory to write `.ave/config` under (default: yours).
        #[arg(long, value_name = "DIR")]
        home: Option<PathBuf>,
    },
    /// Show the configuration files and whether they load.
    Show {
        /// The home directory to read `.ave/config` from (default: yours).
        #[arg(long, value_name = "DIR")]
        home: Option<PathBuf>,
    },
    /// Create `/etc/ave/user`, naming the user AVE services run as.
    Etc {
        /// Where to write the file.
        #[arg(long, value_name = "PATH")]
        path: Option<PathBuf>,
        /// The user name.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// Become the user and write their default configuration files (as root).
    Bootstrap {
        /// The user name.
        #[arg(long, value_name = "NAME")]
        user: String,
    },
}

/// The original `ave-config`'s exit code when bootstrapping fails.
const BOOTSTRAP_FAILED: u8 = 3;

pub(crate) fn main(command: Command) -> anyhow::Result<ExitCode> {
    Ok(match command {
        Command::Init { home } => init(home),
        Command::Show { home } => show(home),
        Command::Etc { path, user } => etc(path, user),
        Command::Bootstrap { user } => bootstrap(&user),
    })
}

fn init(home: Option<PathBuf>) -> ExitCode {
    let result = match home {
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
        Ok((created, skipped)) => {
            for path in skipped {
                println!("WARNING: {} exists, skipped", path.display());
            }
            for path in created {
                println!("Created {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR: could not bootstrap: {}", chain(e.as_ref()));
            ExitCode::from(BOOTSTRAP_FAILED)
        }
    }
}

fn show(home: Option<PathBuf>) -> ExitCode {
    let given = home.is_some();
    let home = match home {
        Some(home) => home,
        None => match ave::persona::current_user() {
            Ok(user) => user.home,
            Err(e) => return fail(&e),
        },
    };
    let dir = cfg::config_dir(&home);
    println!("configuration of {}", dir.display());
    let mut names: Vec<String> = DEFAULT_FILES.iter().map(|n| (*n).to_owned()).collect();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut extra: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.') && !names.contains(n))
            .collect();
        extra.sort();
        names.extend(extra);
    }
    let mut missing = 0;
    let mut broken = 0;
    for name in &names {
        let path = dir.join(name);
        match file_status(name, &path) {
            Status::Ok(summary) => println!("  {}: ok{summary}", path.display()),
            Status::Missing => {
                missing += 1;
                println!("  {}: missing", path.display());
            }
            Status::Invalid(why) => {
                broken += 1;
                println!("  {}: INVALID: {why}", path.display());
            }
        }
        let exposed =
            if name == "authkeys.json" { cfg::key_file_exposure(&path) } else { Ok(None) };
        if let Ok(Some(mode)) = exposed {
            println!(
                "  {0}: WARNING: readable by others (mode {mode:04o}); run \"chmod 600 {0}\"",
                path.display()
            );
        }
    }
    match cfg::load_etc() {
        Ok(user) => println!(
            "{ETC_USER_PATH}: names the user \"{}\" (home {}, uid {})",
            user.name,
            user.home.display(),
            user.uid
        ),
        Err(e) => println!("{ETC_USER_PATH}: {}", etc_problem(&e)),
    }
    if missing > 0 {
        let flag = if given { format!(" --home {}", home.display()) } else { String::new() };
        println!("run \"ave config init{flag}\" to create the missing files with default values");
    }
    if missing + broken == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

enum Status {
    /// Loads; a short description of what matters in it.
    Ok(String),
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
                Status::Ok(format!(" (accounts: {})", accounts.join(", ")))
            }
            Err(e) => Status::Invalid(chain(&e)),
        },
        "broker.json" => match BrokerConfig::from_object(path, object) {
            Ok(broker) => Status::Ok(format!(" (broker at {}:{})", broker.host, broker.port)),
            Err(e) => Status::Invalid(chain(&e)),
        },
        _ => Status::Ok(String::new()),
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
    eprintln!("ERROR: {}", chain(e));
    ExitCode::FAILURE
}
