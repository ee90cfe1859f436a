//! The resolver every role uses: the system's configuration
//! (`/etc/resolv.conf`, and `/etc/hosts` as the C library would), or the
//! servers a parameter names (`dns_servers` for every role,
//! `smtp_dns_servers` for the SMTP client's own), which then answer alone. A configuration that
//! cannot be used is kept as the reason, so that lookups fail (and mail
//! defers) with it rather than the daemon stopping.

use std::net::SocketAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

pub use hickory_resolver::net::NetError;
pub use hickory_resolver::proto::rr::{RData, RecordType};

/// A resolver, or why there is none.
pub struct Resolver {
    inner: Result<TokioResolver, String>,
}

impl Resolver {
    /// A resolver on `servers` (`ip:port`), or on the system's
    /// configuration when there are none.
    pub fn new(servers: &[SocketAddr]) -> Resolver {
        Resolver {
            inner: build(servers),
        }
    }

    /// The resolver, or why there is none.
    pub fn get(&self) -> Result<&TokioResolver, String> {
        self.inner
            .as_ref()
            .map_err(|e| format!("no DNS resolver: {e}"))
    }
}

fn build(servers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let mut builder = if servers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| format!("resolver configuration: {e}"))?
    } else {
        let configs = servers
            .iter()
            .map(|s| {
                let mut config = NameServerConfig::udp_and_tcp(s.ip());
                for connection in &mut config.connections {
                    connection.port = s.port();
                }
                config
            })
            .collect();
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(configs),
            TokioRuntimeProvider::default(),
        );
        *builder.options_mut() = ResolverOpts::default();
        builder
    };
    builder.options_mut().ndots = 0;
    builder.options_mut().use_hosts_file = if servers.is_empty() {
        ResolveHosts::Always
    } else {
        ResolveHosts::Never
    };
    builder.build().map_err(|e| format!("resolver: {e}"))
}
