//! Errors that end the program, each with its exit code: 1 for runtime
//! failures (including missing privileges), 2 for bad input.

/// A fatal error and the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// Not root / missing capabilities: exit 1.
    #[error(transparent)]
    Privileges(#[from] crate::privileges::PrivilegeError),
    /// Bad flag value or config: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Anything else: exit 1.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Fatal {
    /// Process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Fatal::Privileges(_) | Fatal::Other(_) => 1,
            Fatal::Usage(_) => 2,
        }
    }
}
