use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, Info as SnapshotInfo, ListSnapshotsRequest, PrepareSnapshotRequest,
    RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{
    ApplyRequest, CloseIoRequest, Container, CreateContainerRequest, CreateImageRequest,
    CreateRequest, CreateTaskRequest, DeleteContainerRequest, DeleteImageRequest,
    DeleteProcessRequest, DeleteRequest, DeleteTaskRequest, ExecProcessRequest, GetImageRequest,
    GetRequest, Image, InfoRequest, KillRequest, ListContainersRequest, ListContentRequest,
    ListImagesRequest, ListRequest, ListStatusesRequest, ListTasksRequest, ReadContentRequest,
    ResizePtyRequest, StartRequest, UpdateImageRequest, UpdateRequest, WaitRequest,
    WriteContentRequest,
};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::Request;
use containerd_client::types::{Descriptor, Mount};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::error::{ContainerdError, StatusExt};

const NAMESPACE_HEADER: &str = "containerd-namespace";
const LEASE_HEADER: &str = "containerd-lease";
const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const RUNC_V2: &str = "io.containerd.runc.v2";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_CHUNK: usize = 1 << 20;

/// A connection to containerd, bound to one containerd namespace.
///
/// Cheap to clone: clones share the underlying HTTP/2 channel.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    namespace: String,
    address: PathBuf,
}

/// What podctl stores in a container record.
#[derive(Debug)]
pub struct ContainerSpec<'a> {
    pub id: &'a str,
    pub image: &'a str,
    /// The OCI runtime spec, serialized as JSON.
    pub spec_json: Vec<u8>,
    pub snapshotter: &'a str,
    pub snapshot_key: &'a str,
    pub labels: HashMap<String, String>,
}

/// Where a task's standard streams go: paths of FIFOs the caller reads, or empty for none.
#[derive(Debug, Default, Clone)]
pub struct TaskIo {
    pub stdout: String,
    pub stderr: String,
}

/// A containerd lease: resources created under it are kept from gc until it is deleted.
#[derive(Debug, Clone)]
pub struct Lease {
    pub id: String,
}

impl Client {
    /// Connects to the socket at `address` and checks that containerd answers.
    pub async fn connect(address: &Path, namespace: &str) -> Result<Self, ContainerdError> {
        let unreachable = |reason: String| ContainerdError::Unreachable {
            address: address.to_path_buf(),
            reason,
        };
        if !address.exists() {
            return Err(unreachable("no such socket".into()));
        }
        let channel = tokio::time::timeout(CONNECT_TIMEOUT, containerd_client::connect(address))
            .await
            .map_err(|_| unreachable("timed out connecting".into()))?
            .map_err(|e| unreachable(crate::describe(&e)))?;
        let client = Self {
            channel,
            namespace: namespace.to_string(),
            address: address.to_path_buf(),
        };
        tokio::time::timeout(CONNECT_TIMEOUT, client.version())
            .await
            .map_err(|_| unreachable("no answer to a version request".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(client)
    }

    /// The containerd namespace every call is made in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The socket this client is connected to.
    pub fn address(&self) -> &Path {
        &self.address
    }

    fn req<T>(&self, msg: T) -> Request<T> {
        self.req_leased(msg, None)
    }

    fn req_leased<T>(&self, msg: T, lease: Option<&Lease>) -> Request<T> {
        let mut req = Request::new(msg);
        let md = req.metadata_mut();
        // Namespace and lease ids are validated ASCII identifiers, so these parses cannot fail
        // for values podctl produces; a bad user-given namespace is rejected by containerd.
        if let Ok(v) = self.namespace.parse() {
            md.insert(NAMESPACE_HEADER, v);
        }
        if let Some(lease) = lease {
            if let Ok(v) = lease.id.parse() {
                md.insert(LEASE_HEADER, v);
            }
        }
        req
    }

    /// containerd's version string.
    pub async fn version(&self) -> Result<String, ContainerdError> {
        let resp = VersionClient::new(self.channel.clone())
            .version(Request::new(()))
            .await
            .op("version")?;
        Ok(resp.version)
    }

    // ---- leases -------------------------------------------------------------------------

    /// Creates a lease that containerd expires by itself after `expire` (a crash leaks nothing
    /// for longer than that).
    pub async fn create_lease(
        &self,
        purpose: &str,
        expire: Duration,
    ) -> Result<Lease, ContainerdError> {
        let id = format!("podctl-{purpose}-{:016x}", rand::random::<u64>());
        let expire_at = time::OffsetDateTime::now_utc() + expire;
        let expire_at = expire_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let labels = HashMap::from([(super::labels::GC_EXPIRE.to_string(), expire_at)]);
        LeasesClient::new(self.channel.clone())
            .create(self.req(CreateRequest {
                id: id.clone(),
                labels,
            }))
            .await
            .op("leases.create")?;
        Ok(Lease { id })
    }

    /// Makes `lease` hold a resource that exists already (or may: holding a missing one is
    /// harmless), so that gc cannot take it while the lease's work still counts on it.
    /// `kind` is containerd's resource type: `content`, or `snapshots/<snapshotter>`.
    pub async fn add_lease_resource(
        &self,
        lease: &Lease,
        kind: &str,
        id: &str,
    ) -> Result<(), ContainerdError> {
        LeasesClient::new(self.channel.clone())
            .add_resource(
                self.req(containerd_client::services::v1::AddResourceRequest {
                    id: lease.id.clone(),
                    resource: Some(containerd_client::services::v1::Resource {
                        id: id.to_string(),
                        r#type: kind.to_string(),
                    }),
                }),
            )
            .await
            .op("leases.add_resource")?;
        Ok(())
    }

    /// Deletes a lease; resources it alone held become collectable. Missing means done.
    pub async fn delete_lease(&self, lease: &Lease) -> Result<(), ContainerdError> {
        let r = LeasesClient::new(self.channel.clone())
            .delete(self.req(DeleteRequest {
                id: lease.id.clone(),
                sync: false,
            }))
            .await
            .op("leases.delete");
        ignore_not_found(r.map(|_| ()))
    }

    /// Deletes a lease and waits for containerd's gc to collect what it alone held, so a
    /// failed import leaves no content behind. Missing means done.
    pub async fn delete_lease_and_collect(&self, lease: &Lease) -> Result<(), ContainerdError> {
        let r = LeasesClient::new(self.channel.clone())
            .delete(self.req(DeleteRequest {
                id: lease.id.clone(),
                sync: true,
            }))
            .await
            .op("leases.delete");
        ignore_not_found(r.map(|_| ()))
    }

    /// Ids of every lease in the namespace.
    pub async fn list_leases(&self) -> Result<Vec<String>, ContainerdError> {
        let resp = LeasesClient::new(self.channel.clone())
            .list(self.req(ListRequest { filters: vec![] }))
            .await
            .op("leases.list")?;
        Ok(resp.leases.into_iter().map(|l| l.id).collect())
    }

    // ---- content ------------------------------------------------------------------------

    /// Streams a blob into the content store and commits it under `digest`, which containerd
    /// verifies. Returns false when the blob was there already (labels are then merged in).
    pub async fn write_blob<R>(
        &self,
        lease: &Lease,
        digest: &str,
        size: i64,
        labels: HashMap<String, String>,
        mut reader: R,
    ) -> Result<bool, ContainerdError>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let started = std::time::Instant::now();
        let reference = format!("podctl-{digest}-{:08x}", rand::random::<u32>());
        let expected = digest.to_string();
        let (tx, rx) = tokio::sync::mpsc::channel::<WriteContentRequest>(2);
        let feeder = {
            let reference = reference.clone();
            let labels = labels.clone();
            tokio::spawn(async move {
                let mut offset = 0i64;
                let mut buf = vec![0u8; WRITE_CHUNK];
                loop {
                    // Fill whole chunks: a network stream hands out a few KiB per read, and
                    // a message per read would multiply the gRPC round trips.
                    let mut n = 0;
                    while n < buf.len() {
                        let read = reader.read(&mut buf[n..]).await?;
                        if read == 0 {
                            break;
                        }
                        n += read;
                    }
                    if n == 0 {
                        break;
                    }
                    let msg = WriteContentRequest {
                        action: 1, // WRITE
                        r#ref: reference.clone(),
                        total: size,
                        expected: expected.clone(),
                        offset,
                        data: buf[..n].to_vec(),
                        labels: HashMap::new(),
                    };
                    offset += n as i64;
                    if tx.send(msg).await.is_err() {
                        return Ok::<_, std::io::Error>(());
                    }
                }
                let commit = WriteContentRequest {
                    action: 2, // COMMIT
                    r#ref: reference,
                    total: size,
                    expected,
                    offset,
                    data: vec![],
                    labels,
                };
                let _ = tx.send(commit).await;
                Ok(())
            })
        };
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let result = async {
            let mut responses = ContentClient::new(self.channel.clone())
                .write(self.req_leased(stream, Some(lease)))
                .await
                .op("content.write")?;
            while let Some(msg) = responses.next().await {
                msg.map_err(|s| ContainerdError::from_status("content.write", s))?;
            }
            Ok::<_, ContainerdError>(())
        }
        .await;
        // containerd answers a stream that ends without a commit with success: only the
        // feeder knows whether the reader failed half-way, so ask it before trusting `Ok`.
        let fed = if result.is_ok() {
            match feeder.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("reading the blob to send: {e}")),
                Err(e) => Err(format!("the task feeding the blob failed: {e}")),
            }
        } else {
            feeder.abort();
            Ok(())
        };
        let result = match (result, fed) {
            (Ok(()), Err(message)) => Err(ContainerdError::Rpc {
                op: "content.write",
                code: tonic::Code::Aborted,
                message,
            }),
            (result, _) => result,
        };
        tracing::debug!(digest, size, elapsed = ?started.elapsed(), ok = result.is_ok(), "content write");
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.is_already_exists() => {
                self.update_content_labels(digest, labels).await?;
                Ok(false)
            }
            Err(e) => {
                let _ =
                    ContentClient::new(self.channel.clone())
                        .abort(self.req(containerd_client::services::v1::AbortRequest {
                            r#ref: reference,
                        }))
                        .await;
                Err(e)
            }
        }
    }

    /// Reads a whole blob (manifests, configs: small documents).
    pub async fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ContainerdError> {
        let mut stream = ContentClient::new(self.channel.clone())
            .read(self.req(ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            }))
            .await
            .op("content.read")?;
        let mut data = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|s| ContainerdError::from_status("content.read", s))?;
            data.extend_from_slice(&chunk.data);
        }
        Ok(data)
    }

    /// Whether the content store holds `digest`.
    pub async fn has_blob(&self, digest: &str) -> Result<bool, ContainerdError> {
        let r = ContentClient::new(self.channel.clone())
            .info(self.req(InfoRequest {
                digest: digest.to_string(),
            }))
            .await
            .op("content.info");
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every committed blob in the namespace, with its size and labels.
    pub async fn list_blobs(&self) -> Result<Vec<BlobInfo>, ContainerdError> {
        let mut stream = ContentClient::new(self.channel.clone())
            .list(self.req(ListContentRequest { filters: vec![] }))
            .await
            .op("content.list")?;
        let mut all = Vec::new();
        while let Some(page) = stream.next().await {
            let page = page.map_err(|s| ContainerdError::from_status("content.list", s))?;
            all.extend(page.info.into_iter().map(|i| BlobInfo {
                digest: i.digest,
                size: i.size,
                labels: i.labels,
            }));
        }
        Ok(all)
    }

    /// References of the content writes in progress (ingests) in the namespace: a write that
    /// was neither committed nor aborted stays here until containerd expires it.
    pub async fn list_ingests(&self) -> Result<Vec<String>, ContainerdError> {
        let resp = ContentClient::new(self.channel.clone())
            .list_statuses(self.req(ListStatusesRequest { filters: vec![] }))
            .await
            .op("content.list_statuses")?;
        Ok(resp.statuses.into_iter().map(|s| s.r#ref).collect())
    }

    /// Sets the given labels on a blob, leaving its other labels alone.
    pub async fn update_content_labels(
        &self,
        digest: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), ContainerdError> {
        if labels.is_empty() {
            return Ok(());
        }
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        ContentClient::new(self.channel.clone())
            .update(self.req(UpdateRequest {
                info: Some(containerd_client::services::v1::Info {
                    digest: digest.to_string(),
                    labels,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask { paths }),
            }))
            .await
            .op("content.update")?;
        Ok(())
    }

    // ---- images -------------------------------------------------------------------------

    /// Creates the image record `name`, or points an existing one at `target`.
    pub async fn put_image(
        &self,
        name: &str,
        target: Descriptor,
        labels: HashMap<String, String>,
    ) -> Result<(), ContainerdError> {
        let image = Image {
            name: name.to_string(),
            labels,
            target: Some(target),
            ..Default::default()
        };
        let created = ImagesClient::new(self.channel.clone())
            .create(self.req(CreateImageRequest {
                image: Some(image.clone()),
                source_date_epoch: None,
            }))
            .await
            .op("images.create");
        match created {
            Err(e) if e.is_already_exists() => {
                ImagesClient::new(self.channel.clone())
                    .update(self.req(UpdateImageRequest {
                        image: Some(image),
                        update_mask: None,
                        source_date_epoch: None,
                    }))
                    .await
                    .op("images.update")?;
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// The image record `name`, or `None`.
    pub async fn get_image(&self, name: &str) -> Result<Option<Image>, ContainerdError> {
        let r = ImagesClient::new(self.channel.clone())
            .get(self.req(GetImageRequest {
                name: name.to_string(),
            }))
            .await
            .op("images.get");
        match r {
            Ok(resp) => Ok(resp.image),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every image record in the namespace.
    pub async fn list_images(&self) -> Result<Vec<Image>, ContainerdError> {
        let resp = ImagesClient::new(self.channel.clone())
            .list(self.req(ListImagesRequest { filters: vec![] }))
            .await
            .op("images.list")?;
        Ok(resp.images)
    }

    /// Deletes an image record; with `sync`, waits for gc to collect what it alone held.
    pub async fn delete_image(&self, name: &str, sync: bool) -> Result<(), ContainerdError> {
        ImagesClient::new(self.channel.clone())
            .delete(self.req(DeleteImageRequest {
                name: name.to_string(),
                sync,
                target: None,
            }))
            .await
            .op("images.delete")?;
        Ok(())
    }

    // ---- snapshots and diff -------------------------------------------------------------

    /// Creates an active snapshot on `parent` and returns the mounts that assemble it.
    pub async fn prepare_snapshot(
        &self,
        snapshotter: &str,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
        lease: Option<&Lease>,
    ) -> Result<Vec<Mount>, ContainerdError> {
        let resp = SnapshotsClient::new(self.channel.clone())
            .prepare(self.req_leased(
                PrepareSnapshotRequest {
                    snapshotter: snapshotter.to_string(),
                    key: key.to_string(),
                    parent: parent.to_string(),
                    labels,
                },
                lease,
            ))
            .await
            .op("snapshots.prepare")?;
        Ok(resp.mounts)
    }

    /// Commits the active snapshot `key` as `name`.
    pub async fn commit_snapshot(
        &self,
        snapshotter: &str,
        name: &str,
        key: &str,
        labels: HashMap<String, String>,
        lease: Option<&Lease>,
    ) -> Result<(), ContainerdError> {
        SnapshotsClient::new(self.channel.clone())
            .commit(self.req_leased(
                CommitSnapshotRequest {
                    snapshotter: snapshotter.to_string(),
                    name: name.to_string(),
                    key: key.to_string(),
                    labels,
                },
                lease,
            ))
            .await
            .op("snapshots.commit")?;
        Ok(())
    }

    /// The snapshot `key`, or `None`.
    pub async fn stat_snapshot(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> Result<Option<SnapshotInfo>, ContainerdError> {
        let r = SnapshotsClient::new(self.channel.clone())
            .stat(self.req(StatSnapshotRequest {
                snapshotter: snapshotter.to_string(),
                key: key.to_string(),
            }))
            .await
            .op("snapshots.stat");
        match r {
            Ok(resp) => Ok(resp.info),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes a snapshot; missing means done.
    pub async fn remove_snapshot(
        &self,
        snapshotter: &str,
        key: &str,
    ) -> Result<(), ContainerdError> {
        let r = SnapshotsClient::new(self.channel.clone())
            .remove(self.req(RemoveSnapshotRequest {
                snapshotter: snapshotter.to_string(),
                key: key.to_string(),
            }))
            .await
            .op("snapshots.remove");
        ignore_not_found(r.map(|_| ()))
    }

    /// Every snapshot of `snapshotter` in the namespace.
    pub async fn list_snapshots(
        &self,
        snapshotter: &str,
    ) -> Result<Vec<SnapshotInfo>, ContainerdError> {
        let mut stream = SnapshotsClient::new(self.channel.clone())
            .list(self.req(ListSnapshotsRequest {
                snapshotter: snapshotter.to_string(),
                filters: vec![],
            }))
            .await
            .op("snapshots.list")?;
        let mut all = Vec::new();
        while let Some(page) = stream.next().await {
            let page = page.map_err(|s| ContainerdError::from_status("snapshots.list", s))?;
            all.extend(page.info);
        }
        Ok(all)
    }

    /// Applies a layer blob onto the mounts of an active snapshot; returns the uncompressed
    /// descriptor containerd computed while applying.
    pub async fn apply_diff(
        &self,
        layer: Descriptor,
        mounts: Vec<Mount>,
        lease: Option<&Lease>,
    ) -> Result<Descriptor, ContainerdError> {
        let resp = DiffClient::new(self.channel.clone())
            .apply(self.req_leased(
                ApplyRequest {
                    diff: Some(layer),
                    mounts,
                    payloads: HashMap::new(),
                    sync_fs: false,
                },
                lease,
            ))
            .await
            .op("diff.apply")?;
        resp.applied.ok_or(ContainerdError::Malformed {
            op: "diff.apply",
            field: "applied",
        })
    }

    // ---- containers ---------------------------------------------------------------------

    /// Creates a container record running under the runc v2 shim.
    pub async fn create_container(&self, c: ContainerSpec<'_>) -> Result<(), ContainerdError> {
        let container = Container {
            id: c.id.to_string(),
            labels: c.labels,
            image: c.image.to_string(),
            runtime: Some(Runtime {
                name: RUNC_V2.to_string(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: SPEC_TYPE_URL.to_string(),
                value: c.spec_json,
            }),
            snapshotter: c.snapshotter.to_string(),
            snapshot_key: c.snapshot_key.to_string(),
            ..Default::default()
        };
        ContainersClient::new(self.channel.clone())
            .create(self.req(CreateContainerRequest {
                container: Some(container),
            }))
            .await
            .op("containers.create")?;
        Ok(())
    }

    /// Deletes a container record; missing means done.
    pub async fn delete_container(&self, id: &str) -> Result<(), ContainerdError> {
        let r = ContainersClient::new(self.channel.clone())
            .delete(self.req(DeleteContainerRequest { id: id.to_string() }))
            .await
            .op("containers.delete");
        ignore_not_found(r.map(|_| ()))
    }

    /// Containers matching a containerd filter such as `labels."io.podctl.pod"==web`
    /// (empty: all).
    pub async fn list_containers(&self, filter: &str) -> Result<Vec<Container>, ContainerdError> {
        let filters = if filter.is_empty() {
            vec![]
        } else {
            vec![filter.to_string()]
        };
        let resp = ContainersClient::new(self.channel.clone())
            .list(self.req(ListContainersRequest { filters }))
            .await
            .op("containers.list")?;
        Ok(resp.containers)
    }

    // ---- tasks --------------------------------------------------------------------------

    /// Creates the container's task (the shim runs `runc create`); the process exists but
    /// has not run any user code until [`Client::start_task`].
    pub async fn create_task(
        &self,
        container_id: &str,
        rootfs: Vec<Mount>,
        io: TaskIo,
    ) -> Result<u32, ContainerdError> {
        let resp = TasksClient::new(self.channel.clone())
            .create(self.req(CreateTaskRequest {
                container_id: container_id.to_string(),
                rootfs,
                stdin: String::new(),
                stdout: io.stdout,
                stderr: io.stderr,
                terminal: false,
                ..Default::default()
            }))
            .await
            .op("tasks.create")?;
        Ok(resp.pid)
    }

    /// Starts a created task.
    pub async fn start_task(&self, container_id: &str) -> Result<u32, ContainerdError> {
        self.start(container_id, "").await
    }

    /// Waits for the task's process to exit; returns its exit status and time.
    pub async fn wait_task(&self, container_id: &str) -> Result<TaskExit, ContainerdError> {
        self.wait(container_id, "").await
    }

    /// Sends `signal` to the task's init process (`all`: to every process of the container).
    pub async fn kill_task(
        &self,
        container_id: &str,
        signal: u32,
        all: bool,
    ) -> Result<(), ContainerdError> {
        self.kill(container_id, "", signal, all).await
    }

    async fn start(&self, container_id: &str, exec_id: &str) -> Result<u32, ContainerdError> {
        let resp = TasksClient::new(self.channel.clone())
            .start(self.req(StartRequest {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
            }))
            .await
            .op("tasks.start")?;
        Ok(resp.pid)
    }

    async fn wait(&self, container_id: &str, exec_id: &str) -> Result<TaskExit, ContainerdError> {
        let resp = TasksClient::new(self.channel.clone())
            .wait(self.req(WaitRequest {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
            }))
            .await
            .op("tasks.wait")?;
        Ok(TaskExit {
            status: resp.exit_status,
            exited_at: resp.exited_at.and_then(to_system_time),
        })
    }

    async fn kill(
        &self,
        container_id: &str,
        exec_id: &str,
        signal: u32,
        all: bool,
    ) -> Result<(), ContainerdError> {
        TasksClient::new(self.channel.clone())
            .kill(self.req(KillRequest {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
                signal,
                all,
            }))
            .await
            .op("tasks.kill")?;
        Ok(())
    }

    /// Deletes a stopped task (the shim unmounts its rootfs); missing means done.
    pub async fn delete_task(&self, container_id: &str) -> Result<(), ContainerdError> {
        let r = TasksClient::new(self.channel.clone())
            .delete(self.req(DeleteTaskRequest {
                container_id: container_id.to_string(),
            }))
            .await
            .op("tasks.delete");
        ignore_not_found(r.map(|_| ()))
    }

    /// Container ids of every task in the namespace.
    pub async fn list_tasks(&self) -> Result<Vec<String>, ContainerdError> {
        let resp = TasksClient::new(self.channel.clone())
            .list(self.req(ListTasksRequest {
                filter: String::new(),
            }))
            .await
            .op("tasks.list")?;
        Ok(resp.tasks.into_iter().map(|t| t.container_id).collect())
    }

    /// The status of a container's task, `None` when it has none.
    pub async fn task_status(
        &self,
        container_id: &str,
    ) -> Result<Option<TaskStatus>, ContainerdError> {
        let r = TasksClient::new(self.channel.clone())
            .get(self.req(GetRequest {
                container_id: container_id.to_string(),
                exec_id: String::new(),
            }))
            .await
            .op("tasks.get");
        match r {
            Ok(resp) => Ok(resp.process.map(|p| TaskStatus::from_proto(p.status))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ---- exec processes -----------------------------------------------------------------
    //
    // An exec process is an extra process in a running task (the kubelet's exec probes and
    // hooks, `kubectl exec`): created by `exec_process` (the shim records it; nothing runs),
    // run by `start_process` (`runc exec`), then waited for, and always removed with
    // `delete_process`, which also closes its I/O. Exec ids are unique per task.

    /// Adds the exec process `exec_id` to the running task of `container_id`: `process_json`
    /// is an OCI runtime-spec `Process` (serialized as JSON); no stdin, no terminal; its
    /// stdout/stderr go to the FIFOs in `io` (the same path for both is allowed).
    pub async fn exec_process(
        &self,
        container_id: &str,
        exec_id: &str,
        process_json: Vec<u8>,
        io: TaskIo,
    ) -> Result<(), ContainerdError> {
        self.exec_process_io(container_id, exec_id, process_json, "", io, false)
            .await
    }

    /// [`Client::exec_process`] with a standard input and, optionally, a terminal:
    /// `stdin` is the path of a FIFO the shim reads the process's input from (empty: none;
    /// the shim also holds a write end of it until [`Client::close_stdin`]). With `terminal`
    /// (the process spec must say `terminal: true` too) the shim allocates a pseudo-terminal
    /// and copies its output, both streams in one, to `io.stdout`; `io.stderr` is unused
    /// (leave it empty).
    pub async fn exec_process_io(
        &self,
        container_id: &str,
        exec_id: &str,
        process_json: Vec<u8>,
        stdin: &str,
        io: TaskIo,
        terminal: bool,
    ) -> Result<(), ContainerdError> {
        TasksClient::new(self.channel.clone())
            .exec(self.req(ExecProcessRequest {
                container_id: container_id.to_string(),
                stdin: stdin.to_string(),
                stdout: io.stdout,
                stderr: io.stderr,
                terminal,
                spec: Some(prost_types::Any {
                    type_url: PROCESS_TYPE_URL.to_string(),
                    value: process_json,
                }),
                exec_id: exec_id.to_string(),
            }))
            .await
            .op("tasks.exec")?;
        Ok(())
    }

    /// Starts an exec process created by [`Client::exec_process`]; returns its pid. A command
    /// that cannot be run (e.g. not found in the container) fails here.
    pub async fn start_process(
        &self,
        container_id: &str,
        exec_id: &str,
    ) -> Result<u32, ContainerdError> {
        self.start(container_id, exec_id).await
    }

    /// Waits for an exec process to exit (returns at once if it has already exited and has
    /// not been deleted).
    pub async fn wait_process(
        &self,
        container_id: &str,
        exec_id: &str,
    ) -> Result<TaskExit, ContainerdError> {
        self.wait(container_id, exec_id).await
    }

    /// Sends `signal` to an exec process.
    pub async fn kill_process(
        &self,
        container_id: &str,
        exec_id: &str,
        signal: u32,
    ) -> Result<(), ContainerdError> {
        self.kill(container_id, exec_id, signal, false).await
    }

    /// Closes the standard input of a started exec process (`Tasks.CloseIO`): the shim drops
    /// its own write end of the stdin FIFO, so the process reads end-of-file once the
    /// caller's write ends are closed too. Without a terminal that closes the process's
    /// stdin; on a terminal it changes nothing (as with containerd's own clients).
    pub async fn close_stdin(
        &self,
        container_id: &str,
        exec_id: &str,
    ) -> Result<(), ContainerdError> {
        TasksClient::new(self.channel.clone())
            .close_io(self.req(CloseIoRequest {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
                stdin: true,
            }))
            .await
            .op("tasks.close_io")?;
        Ok(())
    }

    /// Sets the window size of the terminal of an exec process started with one
    /// (`Tasks.ResizePty`): the process gets SIGWINCH.
    pub async fn resize_pty(
        &self,
        container_id: &str,
        exec_id: &str,
        width: u32,
        height: u32,
    ) -> Result<(), ContainerdError> {
        TasksClient::new(self.channel.clone())
            .resize_pty(self.req(ResizePtyRequest {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
                width,
                height,
            }))
            .await
            .op("tasks.resize_pty")?;
        Ok(())
    }

    /// Removes an exited (or never started) exec process from the task and closes its I/O;
    /// missing means done. A running one is refused: kill it and wait for it first.
    pub async fn delete_process(
        &self,
        container_id: &str,
        exec_id: &str,
    ) -> Result<(), ContainerdError> {
        let r = TasksClient::new(self.channel.clone())
            .delete_process(self.req(DeleteProcessRequest {
                container_id: container_id.to_string(),
                exec_id: exec_id.to_string(),
            }))
            .await
            .op("tasks.delete_process");
        ignore_not_found(r.map(|_| ()))
    }
}

/// A committed blob as the content store describes it.
#[derive(Debug, Clone)]
pub struct BlobInfo {
    pub digest: String,
    pub size: i64,
    pub labels: HashMap<String, String>,
}

/// A task's state, from containerd's `Status` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Created,
    Running,
    Stopped,
    Paused,
    /// Pausing, or a value this client does not know.
    Other,
}

impl TaskStatus {
    fn from_proto(status: i32) -> Self {
        match status {
            1 => Self::Created,
            2 => Self::Running,
            3 => Self::Stopped,
            4 => Self::Paused,
            _ => Self::Other,
        }
    }
}

/// How a task's process ended.
#[derive(Debug, Clone, Copy)]
pub struct TaskExit {
    /// Exit code, or 128 + signal number for a process killed by a signal.
    pub status: u32,
    pub exited_at: Option<SystemTime>,
}

fn ignore_not_found(r: Result<(), ContainerdError>) -> Result<(), ContainerdError> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

fn to_system_time(ts: prost_types::Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}
