//! Configuration layers and the commands that show and check them.

use std::process::Command;

use crate::common::bin;

fn conf(toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("postern.toml"), toml).unwrap();
    dir
}

fn postern(dir: &tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .arg("-c")
        .arg(dir.path())
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn postconf_shows_defaults_explicit_and_effective_values() {
    let dir = conf(
        "myhostname = \"mx.example.org\"\nmessage_size_limit = 5000\nmynetworks = [\"10.0.0.0/8\", \"127.0.0.0/8\"]\n",
    );
    let env = [("POSTERN_SMTPD_TIMEOUT", "30s")];
    let (code, all, _) = postern(&dir, &["postconf"], &env);
    assert_eq!(code, 0);
    for line in [
        "myhostname = mx.example.org",
        "message_size_limit = 5000",
        "smtpd_timeout = 30s",
        "myorigin = $myhostname",
        "smtpd_recipient_limit = 1000",
        "smtpd_hard_error_limit = 20",
        "mynetworks = 10.0.0.0/8, 127.0.0.0/8",
        "relayhost =",
        "syslog_name = postfix",
        "queue_directory = /var/spool/postern",
    ] {
        assert!(
            all.lines().any(|l| l == line),
            "{line:?} missing from postconf:\n{all}"
        );
    }
    let (_, non_default, _) = postern(&dir, &["postconf", "-n"], &env);
    assert_eq!(
        non_default,
        "message_size_limit = 5000\nmyhostname = mx.example.org\nmynetworks = 10.0.0.0/8, 127.0.0.0/8\nsmtpd_timeout = 30s\n"
    );
    let (_, defaults, _) = postern(
        &dir,
        &[
            "postconf",
            "-d",
            "message_size_limit",
            "smtpd_timeout",
            "smtpd_banner",
        ],
        &env,
    );
    assert_eq!(
        defaults,
        "message_size_limit = 10240000\nsmtpd_timeout = 300s\nsmtpd_banner = $myhostname ESMTP $mail_name\n"
    );
    let (_, expanded, _) = postern(
        &dir,
        &["postconf", "-x", "smtpd_banner", "mydestination"],
        &env,
    );
    assert_eq!(
        expanded,
        "smtpd_banner = mx.example.org ESMTP Postern\nmydestination = mx.example.org, localhost.example.org, localhost\n"
    );
    let (code, _, err) = postern(&dir, &["postconf", "smtpd_timout"], &env);
    assert_eq!(code, 1);
    assert!(
        err.contains("smtpd_timout: unknown parameter (did you mean \"smtpd_timeout\"?)"),
        "{err}"
    );
}

#[test]
fn unknown_parameters_are_errors_with_a_suggestion() {
    let dir = conf("mydestinations = \"example.org\"\n");
    let (code, _, err) = postern(&dir, &["check"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("unknown parameter \"mydestinations\" (did you mean \"mydestination\"?)"),
        "{err}"
    );
    let dir = conf("");
    let (code, _, err) = postern(&dir, &["start"], &[("POSTERN_MESSAGE_SIZE_LIMT", "5")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("environment variable POSTERN_MESSAGE_SIZE_LIMT")
            && err.contains("\"message_size_limit\""),
        "{err}"
    );
}

#[test]
fn bad_values_are_reported_by_check() {
    for (toml, name) in [
        ("smtpd_timeout = \"5 minutes\"", "smtpd_timeout"),
        ("mynetworks = \"300.0.0.0/8\"", "mynetworks"),
        ("smtpd_listen = \"localhost\"", "smtpd_listen"),
        ("queue_directory = \"relative/path\"", "queue_directory"),
        ("message_size_limit = \"ten\"", "message_size_limit"),
    ] {
        let dir = conf(toml);
        let (code, _, err) = postern(&dir, &["check"], &[]);
        assert_eq!(code, 1, "{toml}");
        assert!(err.contains(&format!("parameter {name}:")), "{toml}: {err}");
    }
    let dir = conf("this is = not toml =");
    assert_eq!(postern(&dir, &["check"], &[]).0, 1);
}

#[test]
fn check_validates_without_binding() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let dir = conf(&format!("smtpd_listen = \"{addr}\"\n"));
    let queue = dir.path().join("queue");
    std::fs::write(
        dir.path().join("postern.toml"),
        format!("smtpd_listen = \"{addr}\"\nqueue_directory = {queue:?}\n"),
    )
    .unwrap();
    let (code, out, err) = postern(&dir, &["check"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("is valid") && out.contains(&addr.to_string()),
        "{out}"
    );
}

#[test]
fn the_environment_sets_every_parameter_without_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["postconf", "-n"])
        .env_clear()
        .env("POSTERN_CONFIG_DIR", dir.path())
        .env("POSTERN_RELAYHOST", "[smarthost.example]:587")
        .env("POSTERN_MYNETWORKS", "[::1]/128")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "mynetworks = [::1]/128\nrelayhost = [smarthost.example]:587\n"
    );
}

#[test]
fn the_example_config_documents_every_parameter_and_parses() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/postern.toml"))
            .unwrap();
    let mut uncommented = String::new();
    for param in postern::config::params::PARAMS {
        let line = example
            .lines()
            .find(|l| l.starts_with(&format!("# {} = ", param.name)));
        let line = line.unwrap_or_else(|| panic!("config/postern.toml lacks {}", param.name));
        uncommented.push_str(&line[2..]);
        uncommented.push('\n');
    }
    let dir = conf("");
    // check makes the queue directory: keep it in the test's own directory.
    let queue = format!("queue_directory = {:?}", dir.path().join("queue"));
    let uncommented: String = uncommented
        .lines()
        .map(|l| if l.starts_with("queue_directory = ") { queue.clone() } else { l.to_string() } + "\n")
        .collect();
    std::fs::write(dir.path().join("postern.toml"), uncommented).unwrap();
    let (code, _, err) = postern(&dir, &["check"], &[]);
    assert_eq!(code, 0, "{err}");
}
