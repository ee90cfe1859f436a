//! End-to-end tests: the real binary over loopback with real clients.

mod common;

mod admin;
mod anvil;
mod dns;
mod peer;

mod auth;
mod capture;
mod client_names;
mod clients;
mod config;
mod content_filter;
mod delivery;
mod dropin;
mod from_postfix;
mod local;
mod logs;
mod logtools;
mod metrics;
mod milter;
mod mx;
mod policy;
mod proxy;
mod qshape;
mod queue;
mod reload;
mod restrictions;
mod safety;
mod sendmail;
mod smtpd;
mod starttls;
mod supervision;
mod tls;
