//! `turnpike config validate|diff|apply|dump`: the declarative config file
//! from the command line. `validate` works offline with the same parser the
//! control plane uses; the others go through the admin API's
//! `/config/import` (dry run for `diff`) and `/config/export`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use clap::Subcommand;
use http::{Method, StatusCode};
use turnpike_model::declarative::{Document, Format};
use turnpike_model::{ConfigDiff, ModelError};

use crate::admin_client::AdminClient;
use turnpike_cli::common::UsageError;

#[derive(clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a file locally, without contacting the control plane.
    Validate(FileArg),
    /// Show what applying a file would change (nothing is applied).
    Diff {
        #[command(flatten)]
        file: FileArg,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Replace the whole config with a file, atomically (one new version).
    Apply {
        #[command(flatten)]
        file: FileArg,
        #[command(flatten)]
        admin: AdminArgs,
        /// Only show what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the current config as a declarative file.
    Dump {
        /// Where to write; standard output when absent or `-`.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Output format; by default from the file's extension, else YAML.
        #[arg(long, value_parser = ["yaml", "json"])]
        format: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

#[derive(clap::Args)]
struct FileArg {
    /// The declarative config, YAML or JSON (by extension, else by
    /// content); `-` reads standard input.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
}

#[derive(clap::Args)]
struct AdminArgs {
    /// Base URL of the control plane's admin API.
    #[arg(
        long,
        env = "TURNPIKE_ADMIN_URL",
        default_value = "http://127.0.0.1:8001"
    )]
    admin_url: String,
    /// An admin token: `diff` is a dry-run import, a write as far as
    /// roles go.
    #[arg(long, env = "TURNPIKE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
}

impl AdminArgs {
    fn client(&self) -> AdminClient {
        let base = self.admin_url.trim_end_matches('/').to_owned();
        AdminClient::new(base, self.admin_token.clone())
    }
}

pub async fn run(args: ConfigArgs) -> anyhow::Result<()> {
    match args.command {
        ConfigCommand::Validate(f) => {
            let (_, _, doc) = read_document(&f.file)?;
            println!(
                "{}: valid ({} upstreams, {} routes)",
                f.file.display(),
                doc.upstreams.len(),
                doc.routes.len()
            );
            Ok(())
        }
        ConfigCommand::Diff { file, admin } => apply(&file.file, &admin, true).await,
        ConfigCommand::Apply {
            file,
            admin,
            dry_run,
        } => apply(&file.file, &admin, dry_run).await,
        ConfigCommand::Dump {
            file,
            format,
            admin,
        } => dump(file.as_deref(), format.as_deref(), &admin).await,
    }
}

/// Reads and validates a file; an unreadable or invalid file is a usage
/// error (exit code 2) listing every failing field.
fn read_document(path: &Path) -> anyhow::Result<(Format, Vec<u8>, Document)> {
    let text = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        buf
    } else {
        std::fs::read(path)
            .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?
    };
    let format = format_of(path, &text);
    match Document::parse(&text, format) {
        Ok(doc) => Ok((format, text, doc)),
        Err(ModelError::Invalid(errors)) => {
            let lines: Vec<String> = errors
                .0
                .iter()
                .map(|e| format!("  {}: {}", e.field, e.message))
                .collect();
            let msg = format!("{} is invalid:\n{}", path.display(), lines.join("\n"));
            Err(UsageError(msg).into())
        }
        Err(e) => Err(UsageError(format!("{}: {e}", path.display())).into()),
    }
}

/// By extension, else JSON when the content starts like a JSON object.
fn format_of(path: &Path, text: &[u8]) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => Format::Yaml,
        Some("json") => Format::Json,
        _ if text.trim_ascii_start().starts_with(b"{") => Format::Json,
        _ => Format::Yaml,
    }
}

/// `apply` (and `diff`, which is a dry-run apply).
async fn apply(path: &Path, admin: &AdminArgs, dry_run: bool) -> anyhow::Result<()> {
    // Checked here first: a broken file fails fast, offline, with the same
    // messages the control plane would give.
    let (format, text, _) = read_document(path)?;
    let content_type = match format {
        Format::Yaml => "application/yaml",
        Format::Json => "application/json",
    };
    let (status, body) = admin
        .client()
        .call_raw(
            Method::POST,
            &format!("/api/v1/config/import?dry_run={dry_run}"),
            Some(content_type),
            Bytes::from(text),
        )
        .await
        .with_context(|| format!("cannot reach the admin API at {}", admin.admin_url))?;
    let answer = api_answer(status, &body)?;
    let diff: ConfigDiff = serde_json::from_value(answer["diff"].clone())
        .context("the admin API answered an unexpected diff")?;
    let version = answer["version"].as_u64().unwrap_or_default();
    print!("{}", render_diff(&diff));
    if dry_run {
        println!("dry run: nothing applied (config version {version})");
    } else if diff.is_empty() {
        println!("no changes: config stays at version {version}");
    } else {
        println!("applied: config version {version}");
    }
    Ok(())
}

async fn dump(path: Option<&Path>, format: Option<&str>, admin: &AdminArgs) -> anyhow::Result<()> {
    let path = path.filter(|p| *p != Path::new("-"));
    let format = match format {
        Some("json") => Format::Json,
        Some(_) => Format::Yaml,
        None => match path.and_then(|p| p.extension()).and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            _ => Format::Yaml,
        },
    };
    let (status, body) = admin
        .client()
        .call_raw(Method::GET, "/api/v1/config/export", None, Bytes::new())
        .await
        .with_context(|| format!("cannot reach the admin API at {}", admin.admin_url))?;
    api_answer(status, &body)?;
    // Rendered here from the parsed export, so the output is the canonical
    // form whatever the server's formatting.
    let doc = Document::parse(&body, Format::Json)
        .context("the admin API exported an invalid document")?;
    let text = doc.render(format);
    match path {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(())
}

/// The JSON of a successful answer; a problem otherwise. A validation
/// problem is about the file (exit code 2), anything else a runtime error.
fn api_answer(status: StatusCode, body: &[u8]) -> anyhow::Result<serde_json::Value> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()));
    if status.is_success() {
        return Ok(json);
    }
    let detail = json["detail"]
        .as_str()
        .map_or_else(|| json.to_string(), str::to_owned);
    let mut msg = format!("the admin API answered {status}: {detail}");
    for e in json["errors"].as_array().into_iter().flatten() {
        let field = e["field"].as_str().unwrap_or("");
        let message = e["message"].as_str().unwrap_or("");
        msg.push_str(&format!("\n  {field}: {message}"));
    }
    if status == StatusCode::BAD_REQUEST {
        Err(UsageError(msg).into())
    } else {
        Err(anyhow::anyhow!(msg))
    }
}

/// A diff for people: `+` added, `~` changed (with each field), `-` removed.
fn render_diff(diff: &ConfigDiff) -> String {
    if diff.is_empty() {
        return "no changes\n".to_owned();
    }
    let mut out = String::new();
    let kinds = [
        ("upstreams", lines(&diff.upstreams)),
        ("routes", lines(&diff.routes)),
        ("consumers", lines(&diff.consumers)),
        ("credentials", lines(&diff.credentials)),
        ("plugins", lines(&diff.plugins)),
        ("certificates", lines(&diff.certificates)),
    ];
    for (kind, lines) in kinds {
        if !lines.is_empty() {
            out.push_str(&format!("{kind}:\n{lines}"));
        }
    }
    out
}

fn lines<S>(d: &turnpike_model::diff::KindDiff<S>) -> String {
    let mut out = String::new();
    for a in &d.added {
        out.push_str(&format!("  + {}\n", a.name));
    }
    for c in &d.changed {
        out.push_str(&format!("  ~ {}\n", c.name));
        for f in &c.fields {
            out.push_str(&format!("      {}: {} -> {}\n", f.field, f.from, f.to));
        }
    }
    for r in &d.removed {
        out.push_str(&format!("  - {}\n", r.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_by_extension_then_content() {
        assert_eq!(format_of(Path::new("a.yml"), b"{}"), Format::Yaml);
        assert_eq!(format_of(Path::new("a.json"), b"x: 1"), Format::Json);
        assert_eq!(format_of(Path::new("-"), b"  {\"a\": 1}"), Format::Json);
        assert_eq!(
            format_of(Path::new("conf"), b"format_version: 1"),
            Format::Yaml
        );
    }

    #[test]
    fn diff_reads_as_a_list_of_changes() {
        let before = Document::parse(b"format_version: 1\nupstreams: [{name: a, targets: [{address: 'h:1'}]}, {name: gone}]\n", Format::Yaml).unwrap();
        let after = Document::parse(
            b"format_version: 1\nupstreams: [{name: a, targets: [{address: 'h:2'}]}, {name: b}]\n",
            Format::Yaml,
        )
        .unwrap();
        let old = before.to_snapshot(&Default::default()).unwrap();
        let diff = old.diff(&after.to_snapshot(&old).unwrap());
        assert_eq!(
            render_diff(&diff),
            "upstreams:\n  + b\n  ~ a\n      targets[0].address: \"h:1\" -> \"h:2\"\n  - gone\n"
        );
        assert_eq!(render_diff(&ConfigDiff::default()), "no changes\n");
    }
}
