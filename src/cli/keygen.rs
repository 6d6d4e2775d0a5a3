//! `kairos keygen --out NAME`: an Ed25519 key pair in formats OpenSSL and OpenSSH read.
//!
//! Writes `NAME.key` (PKCS#8 v1 PEM, mode 0600 from creation), `NAME.pub` (SPKI PEM) and
//! `NAME.pub.ssh` (an `ssh-ed25519` line for `allowed_signers`). Refuses to overwrite any of
//! them. Prints the key id (hex SHA-256 of the DER SubjectPublicKeyInfo).

use super::OutputFormat;
use crate::exit;
use crate::sign::keys;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base name of the key files: writes NAME.key, NAME.pub and NAME.pub.ssh.
    #[arg(long, value_name = "NAME")]
    pub out: PathBuf,
    /// Comment of the `ssh-ed25519` line (default: the file name of NAME).
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

/// Creates `path` with `mode`, refusing an existing file.
fn create(path: &Path, mode: u32, contents: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

pub fn run(args: &Args) -> i32 {
    let paths = [
        crate::sign::beside(&args.out, ".key"),
        crate::sign::beside(&args.out, ".pub"),
        crate::sign::beside(&args.out, ".pub.ssh"),
    ];
    if let Some(existing) = paths.iter().find(|p| p.symlink_metadata().is_ok()) {
        errln!(
            "error: {} already exists; kairos keygen never overwrites a key (choose another --out)",
            existing.display()
        );
        return exit::BAD_INPUT;
    }
    let key = match keys::generate() {
        Ok(k) => k,
        Err(e) => {
            super::report_error(e);
            return exit::BAD_INPUT;
        }
    };
    let public = key.verifying_key();
    let comment = args.comment.clone().unwrap_or_else(|| {
        args.out
            .file_name()
            .map_or_else(|| "kairos".into(), |n| n.to_string_lossy().into_owned())
    });
    let files = [
        (0o600, keys::private_pem(&key)),
        (0o644, keys::public_pem(&public)),
        (0o644, keys::public_ssh(&public, &comment) + "\n"),
    ];
    for (i, (path, (mode, text))) in paths.iter().zip(&files).enumerate() {
        if let Err(e) = create(path, *mode, text) {
            errln!("error: cannot write {}: {e}", path.display());
            // Leave no half key pair behind.
            for written in &paths[..=i] {
                if e.kind() != std::io::ErrorKind::AlreadyExists || written != path {
                    let _ = std::fs::remove_file(written);
                }
            }
            return exit::BAD_INPUT;
        }
    }
    let keyid = keys::keyid(&public);
    if args.format == OutputFormat::Json {
        let doc = serde_json::json!({
            "keyid": keyid,
            "private_key": paths[0].display().to_string(),
            "public_key": paths[1].display().to_string(),
            "ssh_public_key": paths[2].display().to_string(),
        });
        super::print_json(&doc);
    } else {
        super::print_stdout(&format!(
            "wrote {} (private, mode 0600), {} and {}\nkey id {keyid}\n",
            paths[0].display(),
            paths[1].display(),
            paths[2].display()
        ));
    }
    exit::SUCCESS
}
