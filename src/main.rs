use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use keyward::cli::{self, Cli, Command, GitCommand, KeysCommand, ServeArgs};
use keyward::config::Settings;
use keyward::startup::Application;
use keyward::telemetry;

/// mimalloc: less fragmentation and faster small allocations than glibc's malloc for the
/// many small strings a large key set is made of (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args),
        Command::Check(args) => cli::check(&args),
        Command::Keys(KeysCommand::New(args)) => cli::new_key(&args),
        Command::Hash => cli::hash(),
        Command::Git(GitCommand::Reapply(args)) => reapply(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("keyward: {e:#}");
        ExitCode::from(2)
    })
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // No transparent huge pages: a 2 MB page is zeroed whole at its first touch and stays
    // resident whole, so with them the initial load of a large key set costs about 10% more
    // CPU and 40 MB more memory (BENCHMARKS.md). The verify path touches a few cache lines.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let explicit = args.config.is_some();
    let path = args
        .config
        .unwrap_or_else(|| PathBuf::from("config/keyward.yml"));
    let settings = Settings::load(&path, explicit)?;
    telemetry::init(settings.log_format, std::io::stdout);
    settings.warn_ignored_variables();
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        if let Some(token) = app.dev_token() {
            print_dev_banner(app.port(), token, app.dev_token_is_stable());
        }
        tracing::info!(port = app.port(), "keyward listening");
        app.run_until_stopped().await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn reapply(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let explicit = args.config.is_some();
    let path = args
        .config
        .unwrap_or_else(|| PathBuf::from("config/keyward.yml"));
    let settings = Settings::load(&path, explicit)?;
    keyward::keys::replication::reapply(&settings)?;
    Ok(ExitCode::SUCCESS)
}

/// Dev mode: everything a newcomer needs to make a first call, and to keep making them
/// after a restart.
fn print_dev_banner(port: u16, token: &str, stable: bool) {
    let why = if stable {
        "auth.dev_token is set, so this admin token is signed with auth.hs256_secret: it, \
         and the ones printed before, stay valid across restarts until they expire."
    } else {
        "no JWT key material is configured, so it made a random HS256 secret. That secret \
         is new at each start: this token stops working when keyward restarts. For a token \
         that stays valid, set auth.hs256_secret (KEYWARD_AUTH__HS256_SECRET, 32 bytes or \
         more) and auth.dev_token: true (KEYWARD_AUTH__DEV_TOKEN=true)."
    };
    println!(
        "\nkeyward is in DEV MODE: {why}\nThis admin token (all tenants, read+write) is valid \
         for 12 hours:\n\n\
         export KEYWARD_TOKEN={token}\n\n\
         Open the console (signed in with that token; the part after # never leaves the \
         browser):\n  http://127.0.0.1:{port}/#token={token}\n\n\
         Or try:\n  curl -s -H \"Authorization: Bearer $KEYWARD_TOKEN\" \
         http://127.0.0.1:{port}/api/acme/admin/apiKeys\n"
    );
}
