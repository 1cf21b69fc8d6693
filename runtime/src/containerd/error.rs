use std::path::PathBuf;

/// A failed call to containerd, classified once at this boundary.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// The socket could not be reached at all.
    #[error(
        "cannot reach containerd at {}: {reason} (start it with `containerd &`, \
         `systemctl start containerd` or `make demo`, or point --address / CONTAINERD_ADDRESS at its socket)",
        address.display()
    )]
    Unreachable { address: PathBuf, reason: String },
    /// The object asked for does not exist.
    #[error("{op}: not found: {message}")]
    NotFound { op: &'static str, message: String },
    /// The object to create exists already.
    #[error("{op}: already exists: {message}")]
    AlreadyExists { op: &'static str, message: String },
    /// The object is in a state that forbids the call (e.g. a running task on delete).
    #[error("{op}: failed precondition: {message}")]
    FailedPrecondition { op: &'static str, message: String },
    /// containerd went away in the middle of a call.
    #[error("{op}: containerd unavailable: {message}")]
    Unavailable { op: &'static str, message: String },
    /// Any other gRPC failure.
    #[error("{op}: {code:?}: {message}")]
    Rpc {
        op: &'static str,
        code: tonic::Code,
        message: String,
    },
    /// A reply lacked a field containerd always sets.
    #[error("{op}: containerd's reply lacks {field}")]
    Malformed {
        op: &'static str,
        field: &'static str,
    },
}

impl ContainerdError {
    pub(crate) fn from_status(op: &'static str, status: tonic::Status) -> Self {
        let message = status.message().to_string();
        match status.code() {
            tonic::Code::NotFound => Self::NotFound { op, message },
            tonic::Code::AlreadyExists => Self::AlreadyExists { op, message },
            tonic::Code::FailedPrecondition => Self::FailedPrecondition { op, message },
            tonic::Code::Unavailable => Self::Unavailable { op, message },
            code => Self::Rpc { op, code, message },
        }
    }

    /// True for [`ContainerdError::NotFound`]: during teardown it means "already done".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// True when containerd went away mid-call or cannot be reached for now (a restart of
    /// containerd): the same call may succeed a moment later.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable { .. } | Self::Unreachable { .. } => true,
            Self::Rpc { code, .. } => matches!(code, tonic::Code::Unknown | tonic::Code::Cancelled),
            _ => false,
        }
    }

    /// True for [`ContainerdError::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Self::AlreadyExists { .. })
    }
}

/// Attaches the operation name to a raw gRPC result.
pub(crate) trait StatusExt<T> {
    fn op(self, op: &'static str) -> Result<T, ContainerdError>;
}

impl<T> StatusExt<T> for Result<tonic::Response<T>, tonic::Status> {
    fn op(self, op: &'static str) -> Result<T, ContainerdError> {
        self.map(tonic::Response::into_inner)
            .map_err(|s| ContainerdError::from_status(op, s))
    }
}
