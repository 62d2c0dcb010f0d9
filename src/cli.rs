//! The command line: `serve` (the default), `check`, `keys new`, `hash`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::{
    KeyEntry, KeyHash, KeyName, Permission, Permissions, TenantId, Token, TokenPrefix,
};
use crate::lint;
use crate::store::{Change, FILE_NAME, SecurityFile, Store, render};

#[derive(Debug, Parser)]
#[command(
    name = "keyward",
    version,
    about = "A file-backed, per-tenant API key server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no subcommand is given).
    Serve(ServeArgs),
    /// Validate every tenants/<t>/security.yml as the server would; exit 1 on any problem.
    Check(CheckArgs),
    /// Work with keys without a running server.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read a token on stdin and print its `sha256:<hex>` hash.
    Hash,
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Configuration file; KEYWARD_* environment variables override it.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The tenants directory to check.
    #[arg(long, value_name = "DIR", default_value = "tenants")]
    pub tenants: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new token, print it once, and print (or append) its security.yml entry.
    New(NewKeyArgs),
}

#[derive(Debug, Args)]
pub struct NewKeyArgs {
    #[arg(long)]
    pub name: String,
    /// Comma-separated permissions, e.g. orders:read,orders:write
    #[arg(long, value_delimiter = ',')]
    pub permissions: Vec<String>,
    /// Expiry as RFC 3339, e.g. 2027-01-01T00:00:00Z
    #[arg(long, value_name = "RFC3339")]
    pub expires: Option<String>,
    /// Tenant whose file --write appends to.
    #[arg(long, requires = "write")]
    pub tenant: Option<String>,
    /// Append the entry to tenants/<tenant>/security.yml (same surgical write as the server).
    #[arg(long, requires = "tenant")]
    pub write: bool,
    #[arg(long, value_name = "DIR", default_value = "tenants")]
    pub tenants: PathBuf,
    #[arg(long, default_value = "kw")]
    pub prefix: String,
}

/// `keyward check`: one line `file:line:col: message` per problem.
pub fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let store = Store::new(args.tenants.clone(), true);
    let (tenants, bad) = store.list_tenants()?;
    let mut problems = 0;
    for name in bad {
        eprintln!(
            "{}: warning: not a valid tenant id, ignored",
            args.tenants.join(name).display()
        );
    }
    let mut valid: Vec<(TenantId, Box<SecurityFile>)> = Vec::new();
    for tenant in tenants {
        let path = store.tenant_dir(&tenant).join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                println!("{}: {e}", path.display());
                problems += 1;
                continue;
            }
        };
        match SecurityFile::parse(&text) {
            Ok(file) => valid.push((tenant, Box::new(file))),
            Err(p) => {
                let line = p.line.unwrap_or(1);
                let col = p.column.unwrap_or(1);
                println!("{}:{line}:{col}: {}", path.display(), p.message);
                problems += 1;
            }
        }
    }
    for group in lint::shared_hashes(&valid) {
        let [first, others @ ..] = group.as_slice() else {
            continue;
        };
        for other in others {
            eprintln!(
                "{}: warning: key {:?} has the same hash as key {:?} of tenant {}",
                store.tenant_dir(&other.tenant).join(FILE_NAME).display(),
                other.name.as_str(),
                first.name.as_str(),
                first.tenant
            );
        }
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `keyward hash`: stdin (one trailing newline stripped) to `sha256:<hex>`.
pub fn hash() -> anyhow::Result<ExitCode> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let token = input
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&input);
    println!("{}", KeyHash::of(token.as_bytes()));
    Ok(ExitCode::SUCCESS)
}

/// `keyward keys new`.
pub fn new_key(args: &NewKeyArgs) -> anyhow::Result<ExitCode> {
    let prefix = TokenPrefix::parse(&args.prefix)?;
    let name = KeyName::parse(&args.name)?;
    let permissions = Permissions::new(
        args.permissions
            .iter()
            .map(|p| Permission::parse(p))
            .collect::<Result<_, _>>()?,
    )?;
    let expires_at = args
        .expires
        .as_deref()
        .map(|e| OffsetDateTime::parse(e, &Rfc3339))
        .transpose()
        .map_err(|_| anyhow::anyhow!("--expires must be RFC 3339, e.g. 2027-01-01T00:00:00Z"))?;
    let token = Token::generate(&prefix);
    let now = OffsetDateTime::now_utc();
    let entry = KeyEntry {
        name,
        hash: token.hash(),
        enabled: true,
        permissions,
        description: None,
        created_at: Some(now.replace_nanosecond(0).unwrap_or(now)),
        created_by: None,
        expires_at,
        previous_hashes: Vec::new(),
    };
    println!("token (shown once, store it now): {}", token.expose());
    if args.write {
        let tenant = TenantId::parse(args.tenant.as_deref().unwrap_or_default())?;
        let store = Store::new(args.tenants.clone(), false);
        store.write(&tenant, |file| -> anyhow::Result<Change> {
            if file.find(&entry.name).is_some() {
                return Err(anyhow::anyhow!("a key named {} already exists", entry.name));
            }
            Ok(Change::Create(entry.clone()))
        })?;
        println!(
            "appended to {}",
            store.tenant_dir(&tenant).join(FILE_NAME).display()
        );
    } else {
        print!("{}", render::entry_yaml(&entry));
    }
    Ok(ExitCode::SUCCESS)
}
