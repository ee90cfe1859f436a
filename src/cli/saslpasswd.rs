//! `saslpasswd`: make a line for the built-in AUTH back end's table
//! (`smtpd_sasl_type = postern`): reads a password and prints
//! `USER {SCHEME}hash`, ready for a `texthash:` file (or `postmap`). On a
//! terminal the password is asked twice without echo; otherwise it is the
//! first line of standard input.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};

use crate::sasl::hash;

#[derive(clap::Parser)]
#[command(
    name = "saslpasswd",
    about = "Print a password hash line for smtpd_sasl_type = postern"
)]
struct Args {
    /// Configuration directory (accepted, as by every command; not read).
    #[arg(short = 'c')]
    _config_dir: Option<std::path::PathBuf>,
    /// Scheme: SHA512-CRYPT (the default), BLF-CRYPT or ARGON2ID.
    #[arg(short = 's', default_value = "SHA512-CRYPT")]
    scheme: String,
    /// The user name, as clients give it to AUTH.
    user: String,
}

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: Args = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    if args.user.is_empty()
        || args
            .user
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        anyhow::bail!(
            "bad user name {:?}: no spaces or control characters",
            args.user
        );
    }
    let scheme = hash::Scheme::parse(&args.scheme).map_err(anyhow::Error::msg)?;
    let password = if std::io::stdin().is_terminal() {
        let first = ask("Password: ")?;
        if ask("Retype password: ")? != first {
            anyhow::bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        anyhow::bail!("empty password");
    }
    let stored = hash::make(scheme, password.as_bytes()).map_err(anyhow::Error::msg)?;
    println!("{} {stored}", args.user);
    Ok(0)
}

/// Reads a line from the terminal with echo off.
fn ask(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data, filled by tcgetattr before use.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is standard input, a terminal; saved is a valid termios.
    let have = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if have {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: as above, with a copy of the terminal's own settings.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if have {
        // SAFETY: puts back the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
