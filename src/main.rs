//! The `postern` binary: dispatch on argv[0] (a link named `mailq`,
//! `postqueue`, `postcat` or `postconf` behaves as that command) or on the
//! first argument, run the command, and map its result to an exit status.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let (name, status) = postern::cli::dispatch(args);
    match status {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{name}: fatal: {}", postern::cli::describe(&e));
            ExitCode::from(1)
        }
    }
}
