//! `unix:passwd.byname`: the system's user database (getpwnam), and the
//! user record the local delivery agent works with.

use std::ffi::{CStr, CString};
use std::path::PathBuf;

use super::{Map, MapError};

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: String,
}

fn from_passwd(pw: &libc::passwd) -> User {
    // SAFETY: getpwnam_r/getpwuid_r fill these with NUL-terminated strings
    // that live in the caller's buffer, which outlives this call.
    let text = |p: *const libc::c_char| {
        if p.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    User {
        name: text(pw.pw_name),
        uid: pw.pw_uid,
        gid: pw.pw_gid,
        home: PathBuf::from(text(pw.pw_dir)),
        shell: text(pw.pw_shell),
    }
}

/// The account named `name` (exactly; user names are case-sensitive).
pub fn user_by_name(name: &str) -> Option<User> {
    let cname = CString::new(name).ok()?;
    lookup(|pw, buf, out| {
        // SAFETY: all pointers are valid for the sizes given.
        unsafe { libc::getpwnam_r(cname.as_ptr(), pw, buf.as_mut_ptr(), buf.len(), out) }
    })
}

/// The account with `uid`.
pub fn user_by_uid(uid: u32) -> Option<User> {
    lookup(|pw, buf, out| {
        // SAFETY: all pointers are valid for the sizes given.
        unsafe { libc::getpwuid_r(uid, pw, buf.as_mut_ptr(), buf.len(), out) }
    })
}

fn lookup(
    call: impl Fn(*mut libc::passwd, &mut [libc::c_char], *mut *mut libc::passwd) -> libc::c_int,
) -> Option<User> {
    let mut size = 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: passwd is plain old data; getpw*_r fills it.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pw, &mut buf, &mut out);
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        if rc != 0 || out.is_null() {
            return None;
        }
        return Some(from_passwd(&pw));
    }
}

/// `unix:passwd.byname`: the value is the passwd line, as in Postfix.
#[derive(Debug)]
pub struct Passwd;

impl Passwd {
    pub fn open(name: &str) -> Result<Passwd, MapError> {
        match name {
            "passwd.byname" => Ok(Passwd),
            other => Err(MapError::Type(format!("unix:{other}"))),
        }
    }
}

impl Map for Passwd {
    fn lookup(&self, key: &str) -> Option<String> {
        let u = user_by_name(key)?;
        Some(format!(
            "{}:*:{}:{}::{}:{}",
            u.name,
            u.uid,
            u.gid,
            u.home.display(),
            u.shell
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users() {
        let me = user_by_uid(unsafe { libc::geteuid() }).expect("the current user");
        assert_eq!(user_by_name(&me.name), Some(me.clone()));
        assert!(user_by_name("no-such-user-here").is_none());
        let line = Passwd.lookup(&me.name).unwrap();
        assert!(line.starts_with(&format!("{}:*:{}:", me.name, me.uid)));
        assert!(Passwd::open("group.byname").is_err());
    }
}
