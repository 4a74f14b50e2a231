use std::process::ExitCode;

use clap::Parser;
use tokensmith::cli::{self, Cli};

fn main() -> ExitCode {
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("error: .env: {}", dotenv_error(&e));
        return ExitCode::from(2);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", usage_error(&e));
            return ExitCode::from(2);
        }
    };
    tokensmith::install_crypto_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// clap's error as one line that names the argument at fault. clap puts the missing arguments
/// on indented lines after the first, and the usage after a blank line (noise here).
fn usage_error(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // clap renders the whole help here; say what is missing instead.
        let usage = rendered.lines().find_map(|l| l.strip_prefix("Usage: ")).unwrap_or("tokensmith <COMMAND>");
        return format!("error: a subcommand is required: {usage} (see --help)");
    }
    let mut lines = rendered.lines();
    let mut message = lines.next().unwrap_or("error: invalid arguments").to_owned();
    for detail in lines.take_while(|l| !l.trim().is_empty()) {
        message.push(' ');
        message.push_str(detail.trim());
    }
    message
}

/// A `.env` problem in one line. The offending line is not echoed: it may hold a secret.
fn dotenv_error(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(line, _) => {
            let name = line.split('=').next().unwrap_or("").trim();
            let name = name.strip_prefix("export ").unwrap_or(name).trim();
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                format!("cannot parse the line that sets {name} (unbalanced quotes?)")
            } else {
                "cannot parse a line (expected NAME=value)".to_owned()
            }
        }
        other => other.to_string().replace(['\r', '\n'], " "),
    }
}
