//! The one error type of the Rust API: an errno (what C callers receive,
//! negated) plus a message that names the argument or path and the cause.

use std::fmt;
use std::io;

/// An error with an errno and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    errno: i32,
    message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(errno: i32, message: impl Into<String>) -> Self {
        Error { errno, message: message.into() }
    }

    /// `-EINVAL` with a message naming the bad argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(libc::EINVAL, message)
    }

    /// An errno returned by the kernel for an operation described by `context`.
    pub fn os(errno: i32, context: impl fmt::Display) -> Self {
        Self::new(errno, format!("{context}: {}", strerror(errno)))
    }

    pub fn from_io(err: io::Error, context: impl fmt::Display) -> Self {
        Self::os(err.raw_os_error().unwrap_or(libc::EIO), context)
    }

    /// The positive errno value.
    pub fn errno(&self) -> i32 {
        self.errno
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with more context (a function or a path).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(io::Error::from_raw_os_error(e.errno).kind(), e.message)
    }
}

/// The C library's description of an errno.
pub fn strerror(errno: i32) -> String {
    io::Error::from_raw_os_error(errno)
        .to_string()
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string()
}
