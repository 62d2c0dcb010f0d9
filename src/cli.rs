//! The command line: `serve` (the default), `check`, `keys new`, `hash`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::{FileProblem, Subject};
use crate::domain::{
    KeyEntry, KeyHash, KeyName, Permission, Permissions, TenantId, Token, TokenPrefix,
};
use crate::lint;
use crate::store::{Change, FILE_NAME, OnDisk, SecurityFile, Store, StoreError, render};

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
    /// Git mode's tools for ops.
    #[command(subcommand)]
    Git(GitCommand),
}

#[derive(Debug, Subcommand)]
pub enum GitCommand {
    /// Apply again, on the remote's tip, the acknowledged writes a rewrite of the remote's
    /// history removed (as the server reported them); each as its own commit, once.
    Reapply(ServeArgs),
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
    /// Check what is staged in git (for a pre-commit hook), not the work tree.
    #[arg(long)]
    pub staged: bool,
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
    /// Who creates the key (`createdBy`); default: the git user (`user.email`, else
    /// `user.name`) of the tenants directory.
    #[arg(long, value_name = "WHO")]
    pub created_by: Option<String>,
}

/// `keyward check`: one line `file:line:col: message` per problem.
pub fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let store = Store::new(args.tenants.clone(), true);
    let listing = store.list_tenants()?;
    for name in &listing.invalid_names {
        eprintln!(
            "{}: warning: not a valid tenant id, ignored",
            args.tenants.join(name).display()
        );
    }
    for tenant in &listing.refused_links {
        eprintln!(
            "{}: warning: a symlink that leads outside the tenants directory or to another \
             tenant's directory, ignored",
            store.tenant_dir(tenant).display()
        );
    }
    let files = if args.staged {
        staged_files(&args.tenants)?
    } else {
        let mut files = Vec::new();
        for tenant in listing.tenants {
            // Read as the server reads: within the boundaries, never a file they exclude.
            let text = match store.read_file(&tenant) {
                Ok(OnDisk::File { text, .. }) => Ok(text),
                Ok(OnDisk::Gone) => continue,
                Err(StoreError::Invalid(problem)) => Err(problem),
                Err(e) => Err(FileProblem {
                    line: None,
                    column: None,
                    message: e.to_string(),
                }),
            };
            files.push((tenant, text));
        }
        files
    };
    let mut problems = 0;
    let mut valid: Vec<(TenantId, Box<SecurityFile>)> = Vec::new();
    for (tenant, text) in files {
        let path = store.tenant_dir(&tenant).join(FILE_NAME);
        match text.and_then(|t| SecurityFile::parse(&t)) {
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

/// Every `<tenant>/security.yml` staged in git under `tenants`, as staged (what a
/// pre-commit hook must check, not the work tree).
fn staged_files(tenants: &Path) -> anyhow::Result<Vec<(TenantId, Result<String, FileProblem>)>> {
    let staged =
        crate::git::staged_files(tenants).map_err(|e| anyhow::anyhow!("{e}: {}", e.stderr()))?;
    let mut files = Vec::new();
    for (path, blob) in staged {
        let Some((dir, FILE_NAME)) = path.split_once('/') else {
            continue;
        };
        let Ok(tenant) = TenantId::parse(dir) else {
            continue;
        };
        let text = String::from_utf8(blob).map_err(|_| FileProblem {
            line: None,
            column: None,
            message: "the file is not valid UTF-8".into(),
        });
        files.push((tenant, text));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// `--created-by`, else the git identity of whoever runs the command, else nobody.
fn created_by(args: &NewKeyArgs) -> anyhow::Result<Option<Subject>> {
    if let Some(who) = &args.created_by {
        return Ok(Some(Subject::parse(who)?));
    }
    let dir = if args.tenants.is_dir() {
        args.tenants.as_path()
    } else {
        Path::new(".")
    };
    Ok(crate::git::user_identity(dir).and_then(|who| Subject::lossy(&who)))
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
        hint: Some(token.hint()),
        enabled: true,
        permissions,
        description: None,
        created_at: Some(now.replace_nanosecond(0).unwrap_or(now)),
        created_by: created_by(args)?,
        rotated_at: None,
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
        let path = store.tenant_dir(&tenant).join(FILE_NAME);
        println!("appended to {}", path.display());
        // In a git work tree the write is a commit of that file alone, as the server's are
        // in git mode; pushing it is ops' call.
        if let Ok(repo) = crate::git::Repo::discover(&args.tenants) {
            let relative = std::fs::canonicalize(&path)?
                .strip_prefix(std::fs::canonicalize(repo.top())?)?
                .to_string_lossy()
                .into_owned();
            let who = entry
                .created_by
                .as_ref()
                .map_or("keyward keys new", |s| s.as_str());
            let commit = repo.commit_path(
                &relative,
                &format!("create {tenant}/{}", entry.name),
                "Made by keyward keys new.",
                &crate::git::Author::of(who),
            )?;
            println!("committed as {commit}");
        }
    } else {
        print!("{}", render::entry_yaml(&entry));
    }
    Ok(ExitCode::SUCCESS)
}
