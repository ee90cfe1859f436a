//! End-to-end tests: the real binary over loopback with real clients.

mod common;

mod clients;
mod config;
mod queue;
mod safety;
mod smtpd;
mod supervision;
