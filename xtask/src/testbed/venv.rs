//! The Python venv that carries the pinned moto server and the pinned zizmor (the GitHub
//! Actions linter the generated workflow is checked with): `target/testbed/venv`.
//!
//! Created once and reused while its stamp file names the same requirement. A new venv is
//! built beside the final path and renamed into place when complete, so an interrupted install
//! is never reused and two concurrent runs do not trample each other. pip takes its options
//! (index, proxy, certificates) from the usual `PIP_*` environment variables.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::process;

/// The exact moto pin: `moto[server]` from PyPI.
pub(crate) const MOTO_REQUIREMENT: &str = "moto[server]==5.2.5";
/// The exact zizmor pin (a wheel with its binary, from PyPI): `venv/bin/zizmor`.
pub(crate) const ZIZMOR_REQUIREMENT: &str = "zizmor==1.33.1";
/// Everything the venv holds, in the stamp file.
const REQUIREMENTS: [&str; 2] = [MOTO_REQUIREMENT, ZIZMOR_REQUIREMENT];
/// The version `import moto` must report.
pub(crate) const MOTO_VERSION: &str = "5.2.5";
const STAMP: &str = ".deployer-testbed-stamp";

/// A usable venv: its interpreter and whether this call created it.
pub(crate) struct Venv {
    pub(crate) python: PathBuf,
    pub(crate) created: bool,
}

/// The Python that creates the venv: `$DEPLOYER_TESTBED_PYTHON`, else `python3`.
fn base_python() -> String {
    std::env::var("DEPLOYER_TESTBED_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Whether a base Python 3 interpreter can be run at all.
pub(crate) fn python_available() -> Result<(), String> {
    let python = base_python();
    match process::output_within(
        Command::new(&python).arg("--version"),
        Duration::from_secs(30),
    ) {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{python} --version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(error) => Err(format!(
            "no Python interpreter `{python}` ({error:#}); install Python 3.11 or set DEPLOYER_TESTBED_PYTHON"
        )),
    }
}

/// Returns the venv at `dir`, creating it (with pip, from PyPI) when absent or stale.
pub(crate) fn ensure(dir: &Path) -> Result<Venv> {
    let python = dir.join("bin").join("python");
    if fs::read_to_string(dir.join(STAMP)).is_ok_and(|s| s.trim() == REQUIREMENTS.join(" "))
        && moto_version(&python).as_deref() == Some(MOTO_VERSION)
    {
        return Ok(Venv {
            python,
            created: false,
        });
    }
    let parent = dir.parent().context("the venv path has no parent")?;
    fs::create_dir_all(parent)?;
    let partial = parent.join(format!("venv.partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&partial);
    let result = build(&partial);
    if let Err(error) = result {
        let _ = fs::remove_dir_all(&partial);
        return Err(error);
    }
    let _ = fs::remove_dir_all(dir);
    if fs::rename(&partial, dir).is_err() {
        // Another run finished first; use its venv if it is good.
        let _ = fs::remove_dir_all(&partial);
    }
    if moto_version(&python).as_deref() != Some(MOTO_VERSION) {
        bail!(
            "the venv at {} does not import moto {MOTO_VERSION}",
            dir.display()
        );
    }
    Ok(Venv {
        python,
        created: true,
    })
}

fn build(dir: &Path) -> Result<()> {
    let python = base_python();
    let requirements = REQUIREMENTS.join(" ");
    eprintln!(
        "testbed: first run on this machine: creating the Python venv for moto and zizmor in {} \
         (`{python} -m venv`; reused by later runs)",
        dir.display()
    );
    run(
        Command::new(&python).args(["-m", "venv"]).arg(dir),
        Duration::from_secs(300),
    )
    .with_context(|| format!("cannot create a venv with `{python} -m venv`"))?;
    eprintln!(
        "testbed: installing {MOTO_REQUIREMENT} and its dependencies from PyPI with pip \
         (about a minute; pip's output follows)"
    );
    let venv_python = dir.join("bin").join("python");
    let out = process::output_within_echoed(
        Command::new(&venv_python)
            .args([
                "-m",
                "pip",
                "install",
                "--no-input",
                "--progress-bar",
                "off",
                "--disable-pip-version-check",
            ])
            .args(REQUIREMENTS),
        Duration::from_secs(1200),
        "testbed:   pip: ",
    )
    .with_context(|| format!("cannot run pip to install {requirements}"))?;
    if !out.status.success() {
        bail!(
            "cannot install {requirements} with pip ({}; its output is above; PIP_* \
             environment variables configure the index)",
            out.status
        );
    }
    fs::write(dir.join(STAMP), format!("{requirements}\n"))?;
    Ok(())
}

fn run(command: &mut Command, timeout: Duration) -> Result<()> {
    let out = process::output_within(command, timeout)?;
    if !out.status.success() {
        bail!(
            "{}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(())
}

/// The version `import moto` reports in the venv, if it imports.
fn moto_version(python: &Path) -> Option<String> {
    let mut command = Command::new(python);
    command
        .args(["-c", "import moto; print(moto.__version__)"])
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = process::output_within(&mut command, Duration::from_secs(120)).ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
