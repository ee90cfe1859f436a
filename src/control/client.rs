//! The control socket's client side, for the commands.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{Request, Response, socket_path};

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens: the daemon is not running.
    #[error("postern is not running")]
    NotRunning,
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
    #[error("control socket: bad response: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Sends one request to the running instance.
pub fn request(queue_directory: &Path, request: &Request) -> Result<Response, ClientError> {
    let path = socket_path(queue_directory);
    let stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NotRunning);
        }
        Err(e) => return Err(e.into()),
    };
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let mut reader = BufReader::new(&stream);
    let mut answer = String::new();
    reader.read_line(&mut answer)?;
    Ok(serde_json::from_str(&answer)?)
}
