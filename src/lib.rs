//! postern — a mail transfer agent with Postfix's interface, in one process.
//!
//! The map of the crate, top down (see the architecture section of the
//! README for the picture). Imports point down: a role uses the shared
//! layers and the roles mail flows to; nothing below a role imports it
//! (a test in this file keeps it so).
//!
//! The binary's edge
//! - [`cli`]        one module per command (`start`, `postconf`, `postqueue`, ...)
//! - [`supervisor`] the tree that replaces Postfix's `master`: start order, restarts, signals, shutdown, the mail log, reload
//!
//! Services behind the roles
//! - [`admin`]      the HTTP service: /metrics, /healthz, /readyz, the queue API (reads what the roles publish)
//! - [`control`]    the control socket behind `stop`, `status`, `reload` and the queue commands
//! - [`milter`]     the Sendmail milter protocol, the MTA's side: events, verdicts, message edits
//! - [`sasl`]       SMTP AUTH's back ends: Dovecot's auth protocol, a table of password hashes
//! - [`showq`]      queue views shared by commands and metrics (mailq's listing, qshape's distribution)
//!
//! The roles, in the order mail flows
//! - [`smtpd`]      the SMTP server: sessions over any stream, verbs, TLS, AUTH, restrictions, limits
//! - [`pickup`]     takes in what the sendmail command leaves in maildrop/
//! - [`cleanup`]    canonical envelope, address rewriting, header and body checks, the queue file
//! - [`qmgr`]       the queue manager: scheduling, the end-of-delivery decisions, and the pool of delivery work the tree owns
//! - [`rewrite`]    trivial-rewrite: canonical addresses, address classes, transport_maps
//! - [`delivery`]   the delivery agents: smtp, lmtp, local, virtual, pipe, discard, error
//! - [`bounce`]     delivery status notifications back to the sender
//!
//! Shared layers, below every role
//! - [`role`]       what roles share: stop and fault messages, exit guards, handles, the arrival trigger
//! - [`metrics`]    the process-wide counters
//! - [`store`]      spool files plus sled queue state; the only user of sled
//! - [`maps`]       lookup tables (`hash:`, `texthash:`, `regexp:`, `pcre:`, `cidr:`, `inline:`, `static:`, `unix:`)
//! - [`config`]     parameters declared once: postern's, Postfix's namespace, main.cf and master.cf, editing
//! - [`tls`]        certificates, trusted CAs, rustls configurations
//! - [`dns`]        the resolver: the system's, or `dns_servers`
//! - [`proto`]      the SMTP wire format, both directions, pure
//! - [`mail`]       shared types without I/O: queue IDs, addresses, envelopes, header fields, log lines

pub mod admin;
pub mod bounce;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod control;
pub mod delivery;
pub mod dns;
pub mod mail;
pub mod maps;
pub mod metrics;
pub mod milter;
pub mod pickup;
pub mod proto;
pub mod qmgr;
pub mod rewrite;
pub mod role;
pub mod sasl;
pub mod showq;
pub mod smtpd;
pub mod store;
pub mod supervisor;
pub mod tls;

#[cfg(test)]
mod shape {
    //! The crate's shape: the graph of `crate::` references between the
    //! folders under `src/` has no circle, and the shared layers refer to
    //! no role.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The top-level modules each top-level module refers to.
    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let modules: BTreeSet<String> = std::fs::read_dir(&src)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let mut graph = BTreeMap::new();
        for module in &modules {
            let mut uses = BTreeSet::new();
            let mut stack = vec![src.join(module)];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(dir).unwrap().flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    for (i, _) in text.match_indices("crate::") {
                        let rest = &text[i + "crate::".len()..];
                        let names: Vec<&str> = match rest.strip_prefix('{') {
                            Some(group) => group
                                .split('}')
                                .next()
                                .unwrap_or("")
                                .split(',')
                                .map(|item| item.trim().split("::").next().unwrap_or(""))
                                .collect(),
                            None => vec![
                                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                                    .next()
                                    .unwrap_or(""),
                            ],
                        };
                        for name in names {
                            if name != module && modules.contains(name) {
                                uses.insert(name.to_string());
                            }
                        }
                    }
                }
            }
            graph.insert(module.clone(), uses);
        }
        graph
    }

    /// A circle through `from`, if any.
    fn circle(
        graph: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|m| m == from) {
            let mut found = path[i..].to_vec();
            found.push(from.to_string());
            return Some(found);
        }
        path.push(from.to_string());
        for next in graph.get(from).into_iter().flatten() {
            if let Some(found) = circle(graph, next, path) {
                return Some(found);
            }
        }
        path.pop();
        None
    }

    #[test]
    fn no_module_circle() {
        let graph = graph();
        assert!(graph.len() > 10, "{graph:?}");
        for module in graph.keys() {
            if let Some(found) = circle(&graph, module, &mut Vec::new()) {
                panic!("module circle: {}", found.join(" -> "));
            }
        }
    }

    #[test]
    fn shared_layers_refer_to_no_role() {
        let graph = graph();
        let shared = [
            "mail", "metrics", "role", "config", "proto", "maps", "store", "tls", "dns",
        ];
        let above = ["supervisor", "admin", "control", "cli"];
        for (module, uses) in &graph {
            for used in uses {
                if shared.contains(&module.as_str()) {
                    assert!(
                        shared.contains(&used.as_str()),
                        "{module} is a shared layer but refers to {used}"
                    );
                }
                if !above.contains(&module.as_str()) && module != "showq" {
                    assert!(
                        !above.contains(&used.as_str()),
                        "the role {module} refers to {used}, which is above the roles"
                    );
                }
            }
        }
    }
}
