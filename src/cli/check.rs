//! `postern check`: validate the configuration without binding any port,
//! and create what is missing of the queue directory (its directories,
//! owners and modes), as `postfix check` does.

use std::ffi::OsString;

use anyhow::Context as _;

pub fn run(args: Vec<OsString>) -> anyhow::Result<u8> {
    let args: super::ConfigDirOnly = match super::parse(args) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let (settings, config) = super::load_config(args.config_dir.as_deref())?;
    let mut warnings = Vec::new();
    let config = std::sync::Arc::new(config);
    let services = crate::supervisor::listeners::services(&settings, &config, &mut warnings)
        .map_err(anyhow::Error::msg)?;
    crate::admin::access::Access::from_config(&config).map_err(anyhow::Error::msg)?;
    for notice in config.notices.iter().chain(&warnings) {
        eprintln!("postern: warning: {notice}");
    }
    crate::store::Store::prepare(&config.queue_directory)
        .with_context(|| format!("queue_directory {}", config.queue_directory.display()))?;
    println!(
        "postern: configuration in {} is valid",
        settings.source.path().display()
    );
    println!(
        "postern: queue_directory = {}",
        config.queue_directory.display()
    );
    for (listener, _) in &services {
        let listen: Vec<String> = listener.addrs.iter().map(|a| a.to_string()).collect();
        match listener.name.as_str() {
            "smtp" => println!("postern: smtpd_listen = {}", listen.join(", ")),
            other => println!("postern: service {other} on {}", listen.join(", ")),
        }
    }
    Ok(0)
}
