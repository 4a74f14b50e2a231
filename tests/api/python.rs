//! The Python peers of the tests: real Django, DRF, simplejwt, PyJWT and OIDC clients, in a
//! virtual environment built from `tests/python/requirements.txt` in `target/test-venv`. It is
//! built once and reused while that file and the machine's `python3` stay the same, so a fresh
//! machine needs only python3 and pip (and PyPI) to run the tests. The scripts the tests run
//! live in `tests/python/`.
//!
//! The tests of one process share one build (`OnceLock`); separate processes (nextest runs each
//! test in its own, `.ci/run` builds it ahead) take turns through a lock file. A pip that fails
//! or hangs fails the tests that need it, with pip's output, instead of hanging them.

use std::{
    fs::{self, File},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// A `pip install` still running after this has hung (a fresh install takes well under a minute).
const PIP_TIMEOUT: Duration = Duration::from_secs(600);
/// A test script still running after this has hung.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/python/`, where the scripts and the requirements are.
pub fn scripts() -> PathBuf {
    repo().join("tests/python")
}

/// The venv's directory, built on first use. Panics with pip's output when it cannot be built.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match VENV.get_or_init(build) {
        Ok(dir) => dir,
        Err(message) => panic!("the Python test venv could not be built: {message}"),
    }
}

/// The venv's interpreter.
pub fn python() -> PathBuf {
    venv().join("bin/python")
}

fn build() -> Result<PathBuf, String> {
    let target = repo().join("target");
    let dir = target.join("test-venv");
    fs::create_dir_all(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
    // Held until this function returns: another process building the venv finishes first.
    let lock = File::create(target.join("test-venv.lock")).map_err(|e| format!("the lock file: {e}"))?;
    // (`File::lock` is newer than the crate's rust-version.)
    // SAFETY: flock on a descriptor `lock` owns and keeps open until the function returns.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("locking the lock file: {}", std::io::Error::last_os_error()));
    }

    let requirements = scripts().join("requirements.txt");
    let stamp = stamp(&requirements)?;
    let stamp_file = dir.join("requirements.sha256");
    if fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) && dir.join("bin/python").exists() {
        return Ok(dir);
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("removing the stale {}: {e}", dir.display()))?;
    }
    let log = target.join("test-venv.log");
    run_logged(Command::new("python3").args(["-m", "venv"]).arg(&dir), "python3 -m venv", &log)?;
    let mut pip = Command::new(dir.join("bin/python"));
    pip.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--timeout", "60", "-r"])
        .arg(&requirements);
    run_logged(&mut pip, "pip install -r tests/python/requirements.txt", &log)?;
    // Written last: a build cut short is rebuilt next time.
    fs::write(&stamp_file, &stamp).map_err(|e| format!("writing {}: {e}", stamp_file.display()))?;
    Ok(dir)
}

/// What the venv was built from: the requirements and the interpreter that made it.
fn stamp(requirements: &Path) -> Result<String, String> {
    let text = fs::read(requirements).map_err(|e| format!("reading {}: {e}", requirements.display()))?;
    let version = Command::new("python3")
        .args(["-c", "import sys; print(sys.version, sys.base_prefix)"])
        .output()
        .map_err(|e| format!("python3 is needed to run the Python peers of the tests: {e}"))?;
    let mut hash = Sha256::new();
    hash.update(&text);
    hash.update(&version.stdout);
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs `command` with its output in `log`, for at most `PIP_TIMEOUT`; on failure, the error
/// carries the end of the output.
fn run_logged(command: &mut Command, what: &str, log: &Path) -> Result<(), String> {
    let out = File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{what} did not start: {e}"))?;
    let deadline = Instant::now() + PIP_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = fs::read_to_string(log).unwrap_or_default();
    let tail: String = output.chars().rev().take(8000).collect::<Vec<_>>().into_iter().rev().collect();
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("{what} failed ({status}):\n{tail}")),
        None => Err(format!("{what} did not finish within {} s:\n{tail}", PIP_TIMEOUT.as_secs())),
    }
}

/// What a Python script did.
#[derive(Debug)]
pub struct Py {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Py {
    /// Panics, showing what the script printed, unless it exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "the Python script failed ({}):\n{}\n{}", self.status, self.stdout, self.stderr);
        self
    }

    /// The script's standard output as JSON (it succeeded).
    pub fn json(&self) -> Value {
        self.assert_success();
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("the script printed no JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

/// Runs `tests/python/{script}` with the venv's interpreter. Async, so a server under test in
/// the same runtime keeps answering the script's requests.
pub async fn run_script(script: &str, args: &[&str], env: &[(&str, &str)]) -> Py {
    let path = scripts().join(script);
    assert!(path.is_file(), "no script {}", path.display());
    let mut argv = vec![path.to_string_lossy().into_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    run(argv, env).await
}

/// Runs `code` (`python -c`) with the venv's interpreter; `sys.argv[1:]` are `args`.
pub async fn run_inline(code: &str, args: &[&str], env: &[(&str, &str)]) -> Py {
    let mut argv = vec!["-c".to_owned(), code.to_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    run(argv, env).await
}

async fn run(argv: Vec<String>, env: &[(&str, &str)]) -> Py {
    let python =
        tokio::task::spawn_blocking(python).await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let mut command = tokio::process::Command::new(python);
    command
        .args(&argv)
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env_remove("DJANGO_SETTINGS_MODULE")
        // No __pycache__ left in tests/python.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(env.iter().copied())
        .current_dir(scripts())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().expect("the venv's python runs");
    let shown = argv.iter().take(2).cloned().collect::<Vec<_>>().join(" ");
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("python {shown} did not finish within {} s", SCRIPT_TIMEOUT.as_secs()))
        .expect("waiting for python");
    Py {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `name` as PEP 503 compares package names.
fn normalized(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

/// `name==version` lines (extras dropped, names normalized).
fn pins(text: &str) -> Vec<String> {
    let mut pins: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, version) = l.split_once("==").unwrap_or((l, ""));
            let name = name.split('[').next().unwrap_or(name).trim();
            format!("{}=={}", normalized(name), version.trim())
        })
        .collect();
    pins.sort();
    pins
}

/// Every package in the venv is pinned in requirements.txt, at the version installed: the
/// peers are the same code on every machine. (`.ci/run` runs this first, to build the venv.)
#[tokio::test]
async fn the_venv_holds_exactly_the_pinned_requirements() {
    let argv = ["-m", "pip", "freeze", "--disable-pip-version-check"].map(str::to_owned);
    let freeze = run(argv.to_vec(), &[]).await;
    freeze.assert_success();
    let requirements = fs::read_to_string(scripts().join("requirements.txt")).unwrap();
    let imports = "import django, rest_framework, rest_framework_simplejwt, jwt, cryptography, oidc_auth; print('{}')";
    run_inline(imports, &[], &[]).await.json();
    assert_eq!(
        pins(&freeze.stdout),
        pins(&requirements),
        "pin every package `pip freeze` lists in tests/python/requirements.txt, dependencies included"
    );
}
