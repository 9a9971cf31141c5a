//! Step 1: a temporary home (mode 0700) with the default config.

use crate::demo::*;

impl Demo {
    pub(super) fn bootstrap(&mut self) -> anyhow::Result<Done> {
        let home = temporary_home()?;
        self.home = Some(home.clone());
        let home_mode = mode(&home)?;
        self.detail(format_args!("home {} (mode {home_mode:04o})", home.display()));

        let (created, skipped) = ave::config::create_default(&home)?;
        ensure!(skipped.is_empty(), "a fresh home already had {skipped:?}");
        let names: Vec<String> = created
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        let dir = ave::config::config_dir(&home);
        self.detail(format_args!(
            "create_default: {} files in {}: {}",
            created.len(),
            dir.display(),
            names.join(", ")
        ));

        let authkeys = dir.join("authkeys.json");
        let key_mode = mode(&authkeys)?;
        if let Some(exposed) = ave::config::key_file_exposure(&authkeys)? {
            bail!("authkeys.json is readable by others (mode {exposed:04o})");
        }
        let keys = ave::config::load_authkeys(&home)?;
        let accounts: Vec<&str> = keys.iter().map(|(name, _)| name).collect();
        self.detail(format_args!(
            "authkeys.json: mode {key_mode:04o}, accounts {} (keys from the system's \
             cryptographic generator)",
            accounts.join(", ")
        ));
        self.admin = keys.admin().context("authkeys.json has no admin key")?.to_owned();
        let data = json!({
            "home": home,
            "home_mode": format!("{home_mode:04o}"),
            "files": names,
            "authkeys_mode": format!("{key_mode:04o}"),
            "accounts": accounts,
        });
        let summary = format!(
            "{} config files, authkeys.json mode {key_mode:04o} ({})",
            created.len(),
            accounts.join(", ")
        );
        self.keys = Some(keys);
        Ok(Done { summary, data })
    }
}

/// A new directory of mode 0700 under `$TMPDIR` (or `/tmp`), with a random name.
pub(super) fn temporary_home() -> anyhow::Result<PathBuf> {
    let name = format!("ave-demo-{}-{}", std::process::id(), ave::config::rand_authkey()?);
    let home = std::env::temp_dir().join(name);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&home)
        .with_context(|| format!("create {}", home.display()))?;
    Ok(home)
}

pub(super) fn mode(path: &Path) -> anyhow::Result<u32> {
    let meta = fs::metadata(path).with_context(|| format!("inspect {}", path.display()))?;
    Ok(meta.permissions().mode() & 0o7777)
}
