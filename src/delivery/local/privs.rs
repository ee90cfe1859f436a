//! Acting as a user for file access: while a [`FsUser`] lives, the calling
//! thread opens and creates files with the user's IDs (Linux's per-thread
//! filesystem IDs), so a mailbox or a `/file` is written with the
//! recipient's rights, not root's. Outside root it changes nothing: the
//! daemon can only ever act as itself.
//!
//! Only blocking code holds one (no `.await` while switched), and the IDs
//! are restored when it is dropped.

/// Whether the daemon runs as root and can act as other users.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub struct FsUser {
    switched: bool,
}

impl FsUser {
    /// Switches this thread's filesystem IDs to `uid`/`gid` (root only).
    pub fn switch(uid: u32, gid: u32) -> FsUser {
        if !is_root() || uid == 0 {
            return FsUser { switched: false };
        }
        // SAFETY: setfsgid/setfsuid only change this thread's credentials.
        unsafe {
            libc::setfsgid(gid);
            libc::setfsuid(uid);
        }
        FsUser { switched: true }
    }
}

impl Drop for FsUser {
    fn drop(&mut self) {
        if self.switched {
            // SAFETY: as above; back to root's IDs.
            unsafe {
                libc::setfsuid(0);
                libc::setfsgid(0);
            }
        }
    }
}
