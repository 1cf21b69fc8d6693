//! The gRPC API (`podctl.v1.Pods`) over the daemon's pods. Errors carry the same text the
//! CLI prints for them, with a code a client can act on:
//! - `InvalidArgument`: the manifest alone is at fault (refused by validation, a bad pod
//!   name, a probe or hook that cannot run as written);
//! - `FailedPrecondition`: the manifest cannot run on this host or with these images as
//!   they are (an image missing or unusable, a hostPath type check failed, an image user
//!   podctl cannot honour, a volume it cannot make), or the pod is in the wrong state;
//!   fixing the host, the images or the manifest makes the same request succeed;
//! - `NotFound` for an unknown pod, `AlreadyExists` for a name taken (or being started),
//!   `Unavailable` when containerd cannot be reached, `DeadlineExceeded` for a pod that did
//!   not end in time; `Internal` for the rest (podctl's own failures).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use podctl_proto::v1;
use tonic::{Request, Response, Status, Streaming};

use super::reads;
use super::supervise::{Daemon, Source, SuperviseError};
use crate::lifecycle::LifecycleError;

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The API's implementation.
pub(crate) struct Service {
    daemon: Arc<Daemon>,
}

impl Service {
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Self { daemon }
    }
}

#[tonic::async_trait]
impl v1::pods_server::Pods for Service {
    async fn version(
        &self,
        _: Request<v1::VersionRequest>,
    ) -> Result<Response<v1::VersionResponse>, Status> {
        let containerd = self
            .daemon
            .client()
            .version()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(v1::VersionResponse {
            podctl_version: env!("CARGO_PKG_VERSION").to_string(),
            containerd_version: containerd,
        }))
    }

    async fn run(&self, req: Request<v1::RunRequest>) -> Result<Response<v1::RunResponse>, Status> {
        let req = req.into_inner();
        let source = if req.source.is_empty() {
            "<request>"
        } else {
            &req.source
        };
        let text = |bytes: Vec<u8>, source: &str| {
            String::from_utf8(bytes)
                .map_err(|_| Status::invalid_argument(format!("{source}: not UTF-8 text")))
        };
        let files = |files: Vec<v1::ManifestFile>| -> Result<Vec<(String, String)>, Status> {
            files
                .into_iter()
                .map(|f| Ok((text(f.text, &f.source)?, f.source)))
                .collect()
        };
        let inputs = crate::manifest::Inputs {
            manifest: (text(req.manifest, source)?, source.to_owned()),
            config_maps: files(req.config_maps)?,
            secrets: files(req.secrets)?,
            strict: req.strict,
        };
        let (pod, _) = inputs
            .runnable()
            .and_then(|(pod, w)| pod.one_replica().map(|()| (pod, w)))
            .map_err(|e| Status::invalid_argument(crate::describe(&e)))?;
        if let crate::manifest::Controller::CronJob(c) = &pod.controller {
            return Err(Status::invalid_argument(format!(
                "{source}: CronJob {:?} runs on its schedule from the daemon's manifests dir, not through `podctl run`",
                c.name
            )));
        }
        if crate::jobs::rules(&pod).is_some() {
            return Err(Status::invalid_argument(format!(
                "{source}: a Job cannot be run by the daemon yet: run it with `podctl run`"
            )));
        }
        let name = self.daemon.run(pod, Source::Api).await.map_err(status)?;
        Ok(Response::new(v1::RunResponse { name }))
    }

    async fn list(
        &self,
        req: Request<v1::ListRequest>,
    ) -> Result<Response<v1::ListResponse>, Status> {
        let d = &self.daemon;
        reads::list(d.root(), d.namespace(), req.into_inner().all).map(Response::new)
    }

    async fn get(&self, req: Request<v1::GetRequest>) -> Result<Response<v1::GetResponse>, Status> {
        let d = &self.daemon;
        reads::get(d.root(), d.namespace(), &req.into_inner().name).map(Response::new)
    }

    async fn stop(
        &self,
        req: Request<v1::StopRequest>,
    ) -> Result<Response<v1::StopResponse>, Status> {
        let req = req.into_inner();
        let wait = Duration::from_secs(req.wait_seconds.into());
        let ended = self
            .daemon
            .stop(&req.name, req.now, wait)
            .await
            .map_err(|e| self.unknown_or(&req.name, e))?;
        Ok(Response::new(v1::StopResponse { ended }))
    }

    async fn remove(
        &self,
        req: Request<v1::RemoveRequest>,
    ) -> Result<Response<v1::RemoveResponse>, Status> {
        let req = req.into_inner();
        self.daemon
            .remove(&req.name, req.force)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::RemoveResponse {}))
    }

    type LogsStream = Boxed<v1::LogLine>;

    async fn logs(
        &self,
        req: Request<v1::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let d = &self.daemon;
        let stream = reads::logs(d.root(), d.namespace(), req.into_inner())?;
        Ok(Response::new(Box::pin(stream)))
    }

    type EventsStream = Boxed<v1::Event>;

    async fn events(
        &self,
        req: Request<v1::EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let d = &self.daemon;
        let stream = reads::events(d.root(), d.namespace(), req.into_inner())?;
        Ok(Response::new(Box::pin(stream)))
    }

    type ExecStream = Boxed<v1::ExecOutput>;

    async fn exec(
        &self,
        req: Request<Streaming<v1::ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let d = &self.daemon;
        let stream = reads::exec(
            d.client().clone(),
            d.root(),
            d.namespace(),
            req.into_inner(),
        )
        .await?;
        Ok(Response::new(Box::pin(stream)))
    }
}

impl Service {
    /// A pod this daemon does not supervise: unknown (`NotFound`), or not its own or not
    /// running (`FailedPrecondition`).
    fn unknown_or(&self, pod: &str, e: SuperviseError) -> Status {
        if let SuperviseError::NotSupervised { .. } = e {
            let d = &self.daemon;
            if let Err(missing) = crate::pods::get(d.root(), d.namespace(), pod) {
                return Status::not_found(crate::describe(&missing));
            }
        }
        status(e)
    }
}

/// The status code of a daemon error; its message is the CLI's.
fn status(e: SuperviseError) -> Status {
    let message = crate::describe(&e);
    match e {
        SuperviseError::Lifecycle(LifecycleError::PodExists { .. })
        | SuperviseError::Admitting { .. } => Status::already_exists(message),
        SuperviseError::Lifecycle(LifecycleError::PodNotFound { .. })
        | SuperviseError::Pods(crate::pods::PodsError::NotFound { .. }) => {
            Status::not_found(message)
        }
        SuperviseError::Lifecycle(
            LifecycleError::BadPodName { .. }
            | LifecycleError::Handler { .. }
            | LifecycleError::ClaimNotFound { .. }
            | LifecycleError::Claim(
                crate::claims::ClaimError::Immutable { .. }
                | crate::claims::ClaimError::Shrunk { .. },
            ),
        ) => Status::invalid_argument(message),
        SuperviseError::Lifecycle(LifecycleError::Claim(
            crate::claims::ClaimError::ReadWriteOncePod { .. }
            | crate::claims::ClaimError::InUse { .. },
        )) => Status::failed_precondition(message),
        SuperviseError::Lifecycle(LifecycleError::Containerd(_)) => Status::unavailable(message),
        SuperviseError::Lifecycle(
            LifecycleError::Image(_)
            | LifecycleError::Reference { .. }
            | LifecycleError::Sandbox(_)
            | LifecycleError::Network(_)
            | LifecycleError::Oci(_),
        )
        | SuperviseError::Lifecycle(LifecycleError::PodRunning { .. })
        | SuperviseError::NotSupervised { .. }
        | SuperviseError::Running { .. } => Status::failed_precondition(message),
        SuperviseError::StillRunning { .. } => Status::deadline_exceeded(message),
        _ => Status::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::SandboxError;

    #[test]
    fn errors_the_user_can_fix_are_not_internal() {
        let code = |e: LifecycleError| status(e.into()).code();
        let host_path = SandboxError::HostPathType {
            volume: "data".into(),
            path: "/srv/data".into(),
            expected: "directory".into(),
        };
        assert_eq!(code(host_path.into()), tonic::Code::FailedPrecondition);
        let user = crate::oci::OciError::UserByName {
            container: "app".into(),
            user: "nginx".into(),
        };
        assert_eq!(code(user.into()), tonic::Code::FailedPrecondition);
        let name = LifecycleError::BadPodName { pod: "A".into() };
        assert_eq!(code(name), tonic::Code::InvalidArgument);
        assert_eq!(
            code(LifecycleError::Join("lost".into())),
            tonic::Code::Internal
        );
    }
}
