//! `postern check`: validate the configuration (and that the queue
//! directory can be created) without binding any port.

use std::ffi::OsString;

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: super::ConfigDirOnly = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let (settings, config) = super::load_config(args.config_dir.as_deref())?;
    println!(
        "postern: configuration in {} is valid",
        settings.config_dir.display()
    );
    println!(
        "postern: queue_directory = {}",
        config.queue_directory.display()
    );
    let listen: Vec<String> = config.smtpd_listen.iter().map(|a| a.to_string()).collect();
    println!("postern: smtpd_listen = {}", listen.join(", "));
    Ok(0)
}
