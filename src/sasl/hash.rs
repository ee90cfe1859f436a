//! Password hashes in Dovecot's `{SCHEME}value` notation, verified with
//! RustCrypto's and the bcrypt crate's implementations: `{SHA512-CRYPT}`
//! and `{SHA256-CRYPT}` (`$6$`, `$5$`), `{BLF-CRYPT}` (`$2y$`, `$2b$`),
//! `{ARGON2ID}` and `{ARGON2I}` (`$argon2id$...`), `{CRYPT}` (any of the
//! crypt forms, told by their prefix), and `{PLAIN}`/`{CLEAR}` (compared in
//! constant time; accepted with a warning when the table is read).

use argon2::Argon2;
use sha_crypt::{PasswordHasher, PasswordVerifier, ShaCrypt};
use subtle::ConstantTimeEq;

/// Why a stored value cannot be checked.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("no {{SCHEME}} prefix")]
    NoScheme,
    #[error(
        "unsupported scheme {{{0}}} (SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, ARGON2ID, ARGON2I, CRYPT, PLAIN)"
    )]
    Scheme(String),
    #[error("damaged {{{0}}} hash")]
    Damaged(String),
}

/// The scheme and the value of `{SCHEME}value`.
pub fn split(stored: &str) -> Result<(String, &str), HashError> {
    let rest = stored.trim().strip_prefix('{').ok_or(HashError::NoScheme)?;
    let (scheme, value) = rest.split_once('}').ok_or(HashError::NoScheme)?;
    Ok((scheme.to_ascii_uppercase(), value))
}

/// Whether the scheme keeps the password in the clear.
pub fn is_plain(scheme: &str) -> bool {
    matches!(scheme, "PLAIN" | "CLEAR")
}

/// Whether `password` matches the stored `{SCHEME}value`.
pub fn verify(stored: &str, password: &[u8]) -> Result<bool, HashError> {
    let (scheme, value) = split(stored)?;
    let damaged = || HashError::Damaged(scheme.clone());
    match scheme.as_str() {
        "PLAIN" | "CLEAR" => Ok(value.as_bytes().ct_eq(password).into()),
        "SHA512-CRYPT" | "SHA256-CRYPT" => crypt(value, password).ok_or_else(damaged),
        "BLF-CRYPT" => bcrypt::verify(password, value).map_err(|_| damaged()),
        "ARGON2ID" | "ARGON2I" | "ARGON2D" => {
            match Argon2::default().verify_password(password, value) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
                Err(_) => Err(damaged()),
            }
        }
        "CRYPT" => crypt(value, password).ok_or_else(damaged),
        other => Err(HashError::Scheme(other.to_string())),
    }
}

/// A crypt(3) string by its prefix; `None` when it is none we know or damaged.
fn crypt(value: &str, password: &[u8]) -> Option<bool> {
    if value.starts_with("$6$") || value.starts_with("$5$") {
        return match ShaCrypt::default().verify_password(password, value) {
            Ok(()) => Some(true),
            Err(sha_crypt::password_hash::Error::PasswordInvalid) => Some(false),
            Err(_) => None,
        };
    }
    if value.starts_with("$2") {
        return bcrypt::verify(password, value).ok();
    }
    if value.starts_with("$argon2") {
        return match Argon2::default().verify_password(password, value) {
            Ok(()) => Some(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Some(false),
            Err(_) => None,
        };
    }
    None
}

/// The schemes `postern saslpasswd` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sha512Crypt,
    BlfCrypt,
    Argon2id,
}

impl Scheme {
    pub fn parse(name: &str) -> Result<Scheme, String> {
        match name.to_ascii_uppercase().as_str() {
            "SHA512-CRYPT" => Ok(Scheme::Sha512Crypt),
            "BLF-CRYPT" => Ok(Scheme::BlfCrypt),
            "ARGON2ID" => Ok(Scheme::Argon2id),
            other => Err(format!(
                "unknown scheme {other:?} (SHA512-CRYPT, BLF-CRYPT, ARGON2ID)"
            )),
        }
    }
}

/// A new hash of `password` with a random salt, as `{SCHEME}value`
/// (what Dovecot's `doveadm pw -s SCHEME` makes).
pub fn make(scheme: Scheme, password: &[u8]) -> Result<String, String> {
    Ok(match scheme {
        Scheme::Sha512Crypt => {
            // 12 bytes are 16 characters of salt, crypt(3)'s most: a longer
            // one would be cut there by Dovecot and glibc, and not match.
            let mut salt = [0u8; 12];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut salt))
                .map_err(|e| format!("/dev/urandom: {e}"))?;
            let hash = ShaCrypt::default()
                .hash_password_with_salt(password, &salt)
                .map_err(|e| e.to_string())?;
            format!("{{SHA512-CRYPT}}{}", hash.as_str())
        }
        Scheme::BlfCrypt => {
            let hash = bcrypt::hash(password, bcrypt::DEFAULT_COST).map_err(|e| e.to_string())?;
            format!("{{BLF-CRYPT}}{hash}")
        }
        Scheme::Argon2id => {
            use argon2::PasswordHasher as _;
            let hash = Argon2::default()
                .hash_password(password)
                .map_err(|e| e.to_string())?;
            format!("{{ARGON2ID}}{hash}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        let made = make(Scheme::Sha512Crypt, b"s3cret").unwrap();
        assert!(made.starts_with("{SHA512-CRYPT}$6$"), "{made}");
        let salt = made.split('$').nth(3).unwrap();
        assert_eq!(
            salt.len(),
            16,
            "crypt(3) salts are 16 characters at most: {made}"
        );
        assert_eq!(verify(&made, b"s3cret"), Ok(true));
        assert_eq!(verify(&made, b"s3cre"), Ok(false));
        // What glibc's crypt(3) makes (openssl passwd -6 / -5).
        let glibc6 = "{SHA512-CRYPT}$6$abcdefghijklmnop$MX/U/9p1vJFl3WHuV0LxXU6VyeXNhxK34.H5GaCGFz3VpOLhXvzju3d5SbC6VFmLrYkfJPFXjzdpZoq3w/Yul0";
        assert_eq!(verify(glibc6, b"s3cret"), Ok(true));
        assert_eq!(verify(glibc6, b"s3cre7"), Ok(false));
        let glibc5 = "{SHA256-CRYPT}$5$saltsalt$i1q2ZQzc.tl/BQ6CHiENAcVDvEY6nJ1OWlWXKh94b1.";
        assert_eq!(verify(glibc5, b"s3cret"), Ok(true));
        assert_eq!(verify("{PLAIN}pass", b"pass"), Ok(true));
        assert_eq!(verify("{plain}pass", b"pasS"), Ok(false));
        let blf = bcrypt::hash("pw", 4).unwrap();
        assert_eq!(verify(&format!("{{BLF-CRYPT}}{blf}"), b"pw"), Ok(true));
        assert_eq!(verify(&format!("{{CRYPT}}{blf}"), b"no"), Ok(false));
        let argon = {
            use argon2::PasswordHasher as _;
            Argon2::default().hash_password(b"pw").unwrap().to_string()
        };
        assert!(argon.starts_with("$argon2id$"), "{argon}");
        assert_eq!(verify(&format!("{{ARGON2ID}}{argon}"), b"pw"), Ok(true));
        assert_eq!(verify(&format!("{{ARGON2ID}}{argon}"), b"pv"), Ok(false));
        assert_eq!(verify("nothing", b"x"), Err(HashError::NoScheme));
        assert!(matches!(verify("{MD5}x", b"x"), Err(HashError::Scheme(_))));
        assert!(matches!(
            verify("{SHA512-CRYPT}junk", b"x"),
            Err(HashError::Damaged(_))
        ));
        for scheme in [Scheme::BlfCrypt, Scheme::Argon2id] {
            let made = make(scheme, b"pw").unwrap();
            assert_eq!(verify(&made, b"pw"), Ok(true), "{made}");
            assert_eq!(verify(&made, b"px"), Ok(false), "{made}");
        }
    }
}
