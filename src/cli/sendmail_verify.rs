//! `sendmail -bv ADDRESS...`: how each address would be delivered, from
//! the configuration and tables in force, printed at once; nothing is
//! queued or sent. (Postfix mails this report to the sender; printing it
//! answers the same question without a round trip through the queue.)
//!
//! Each address goes through what cleanup and trivial-rewrite do —
//! canonical mapping, virtual alias expansion, the recipient tables smtpd
//! checks, the route — and for the local transport through the alias table
//! and the user database. Exit status 0 when every address is
//! deliverable, 67 (EX_NOUSER) otherwise.

use crate::cleanup::CleanupConfig;
use crate::cleanup::address::Role;
use crate::config::Config;
use crate::config::services::Kind;
use crate::mail::Address;
use crate::maps::{self, unix};

const EX_NOUSER: u8 = 67;

pub fn report(config: &Config, addresses: &[String]) -> anyhow::Result<u8> {
    if addresses.is_empty() {
        anyhow::bail!("-bv needs at least one address");
    }
    let tables = CleanupConfig::from_config(config)?;
    let aliases = maps::open_list(&config.alias_maps)?;
    let mut status = 0;
    for given in addresses {
        let Ok(address) =
            Address::parse_mailbox(given.trim_start_matches('<').trim_end_matches('>'))
        else {
            println!("<{given}>: undeliverable: bad address syntax");
            status = EX_NOUSER;
            continue;
        };
        let original = address.qualified(&config.myorigin);
        let canonical = tables.addresses.address(&original, Role::EnvelopeRecipient);
        let expanded = match tables.addresses.virtual_alias(&canonical) {
            Ok(list) => list,
            Err(e) => {
                println!("<{original}>: undeliverable for now: {e}");
                status = EX_NOUSER;
                continue;
            }
        };
        for address in expanded {
            let via = if address == original {
                String::new()
            } else {
                format!(" (from <{original}>)")
            };
            match describe(config, &tables, &aliases, &address) {
                Ok(how) => println!("<{address}>{via}: deliverable: {how}"),
                Err(why) => {
                    println!("<{address}>{via}: undeliverable: {why}");
                    status = EX_NOUSER;
                }
            }
        }
    }
    Ok(status)
}

fn describe(
    config: &Config,
    tables: &CleanupConfig,
    aliases: &maps::Maps,
    address: &Address,
) -> Result<String, String> {
    let rewrite = &tables.rewrite;
    rewrite
        .check_recipient(address)
        .map_err(|u| format!("{} {}", u.status, u.text))?;
    let route = rewrite.resolve(&rewrite.canonical(address));
    let kind = config
        .services
        .get(&route.transport)
        .map(|s| s.kind)
        .or_else(|| Kind::builtin(&route.transport))
        .ok_or_else(|| format!("mail transport unavailable: {}", route.transport))?;
    let via = format!("via {}:{}", route.transport, route.nexthop);
    match kind {
        Kind::Error => Err(route.nexthop),
        Kind::Local => {
            let local = address.local.to_ascii_lowercase();
            let (user, _) = maps::split_extension(&local, &config.recipient_delimiter);
            if let Some(value) =
                maps::lookup(aliases, &local).or_else(|| maps::lookup(aliases, user))
            {
                return Ok(format!("{via}, alias for {value}"));
            }
            match unix::user_by_name(user) {
                Some(u) => Ok(format!("{via}, local user {} (uid {})", u.name, u.uid)),
                None if !config.luser_relay.is_empty() => Ok(format!(
                    "{via}, unknown user, luser_relay {}",
                    config.luser_relay
                )),
                None => Err(format!("5.1.1 unknown user: \"{user}\"")),
            }
        }
        _ => Ok(via),
    }
}
