//! Where a repository's files live: a local directory (on-site) or an S3-compatible object store
//! (off-site). The engine sees only relative names (`config`, `index/ID`, `data/XX/ID`, …) and
//! whole-file writes that are atomic: a local file is written under a temporary name, synced and
//! renamed; an object store's PUT is atomic by itself.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::{Error, Result};

/// The storage under a repository.
pub trait Backend: Send + Sync {
    /// How the repository is shown in messages (a path or an `s3://` URL).
    fn location(&self) -> String;
    /// Whether there is nothing at all yet (a new repository may be created here).
    fn is_empty(&self) -> Result<bool>;
    /// Prepares an empty location (creates directories where that means something).
    fn create(&self) -> Result<()>;
    /// A whole file, or `None` when it does not exist.
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// `len` bytes of a file from `offset`.
    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// Writes a whole file atomically (`sync`: durable before returning, where that applies).
    fn write(&self, name: &str, bytes: &[u8], sync: bool) -> Result<()>;
    /// The names of every file under `dir` (recursively, relative to the repository), sorted;
    /// never temporary files.
    fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// The size of a file, or `None` when it does not exist.
    fn size(&self, name: &str) -> Result<Option<u64>>;
    /// Removes a file (removing a missing file is not an error).
    fn remove(&self, name: &str) -> Result<()>;
    /// Files left half-written by interrupted runs.
    fn temporaries(&self) -> Result<Vec<String>>;
}

/// Opens the backend for `location`: `s3://bucket/prefix` or a local directory.
///
/// S3 credentials, region and endpoint come from the usual environment variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`; an `http://`
/// endpoint is allowed for a store on the local network or a test server).
pub fn open_location(location: &str) -> Result<Arc<dyn Backend>> {
    if location.is_empty() {
        return Err(Error::Invalid("the repository location is empty".into()));
    }
    if let Some(rest) = location.strip_prefix("s3://") {
        return Ok(Arc::new(S3::new(rest)?));
    }
    if location.contains("://") {
        return Err(Error::Invalid(format!(
            "{location}: a repository is a local directory or an s3://bucket/prefix URL"
        )));
    }
    Ok(Arc::new(Local::new(Path::new(location))))
}

// --- local directory ---------------------------------------------------------------------

/// A repository in a local directory.
pub struct Local {
    root: PathBuf,
    /// Open pack files, so that restoring reads each with `pread` instead of reopening it.
    open: Mutex<HashMap<String, Arc<File>>>,
}

const TMP: &str = ".tmp-";

impl Local {
    pub fn new(root: &Path) -> Local {
        Local {
            root: root.to_path_buf(),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn file(&self, name: &str) -> Result<Arc<File>> {
        let mut open = self
            .open
            .lock()
            .map_err(|_| Error::Invalid("file cache poisoned".into()))?;
        if let Some(f) = open.get(name) {
            return Ok(f.clone());
        }
        let path = self.path(name);
        let f = Arc::new(File::open(&path).map_err(Error::io(&path))?);
        if open.len() > 256 {
            open.clear();
        }
        open.insert(name.to_string(), f.clone());
        Ok(f)
    }

    fn walk(&self, dir: &Path, rel: &str, tmp: bool, out: &mut Vec<String>) -> Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(dir)(e)),
        };
        for e in entries {
            let e = e.map_err(Error::io(dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let path = e.path();
            let ft = e.file_type().map_err(Error::io(&path))?;
            if ft.is_dir() {
                self.walk(&path, &child, tmp, out)?;
            } else if name.starts_with(TMP) == tmp {
                out.push(child);
            }
        }
        Ok(())
    }
}

impl Backend for Local {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn is_empty(&self) -> Result<bool> {
        match std::fs::read_dir(&self.root) {
            Ok(mut d) => Ok(d.next().is_none()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(Error::io(&self.root)(e)),
        }
    }

    fn create(&self) -> Result<()> {
        for d in ["keys", "index", "snapshots", "locks"] {
            let p = self.root.join(d);
            std::fs::create_dir_all(&p).map_err(Error::io(&p))?;
        }
        for i in 0..=255u8 {
            let p = self.root.join("data").join(hex::encode([i]));
            std::fs::create_dir_all(&p).map_err(Error::io(&p))?;
        }
        Ok(())
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let p = self.path(name);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p)(e)),
        }
    }

    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let f = self.file(name)?;
        let mut buf = vec![0u8; usize::try_from(len).map_err(|_| Error::Invalid("range".into()))?];
        let p = self.path(name);
        f.read_exact_at(&mut buf, offset).map_err(Error::io(&p))?;
        Ok(buf)
    }

    fn write(&self, name: &str, bytes: &[u8], sync: bool) -> Result<()> {
        let dest = self.path(name);
        let dir = dest.parent().unwrap_or(&self.root);
        let file_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!("{TMP}{file_name}-{}", std::process::id()));
        let mut f = File::create(&tmp).map_err(Error::io(&tmp))?;
        f.write_all(bytes).map_err(Error::io(&tmp))?;
        if sync {
            f.sync_all().map_err(Error::io(&tmp))?;
        }
        drop(f);
        std::fs::rename(&tmp, &dest).map_err(Error::io(&dest))
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.walk(&self.path(dir), dir, false, &mut out)?;
        out.sort();
        Ok(out)
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        let p = self.path(name);
        match std::fs::metadata(&p) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p)(e)),
        }
    }

    fn remove(&self, name: &str) -> Result<()> {
        if let Ok(mut open) = self.open.lock() {
            open.remove(name);
        }
        let p = self.path(name);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&p)(e)),
        }
    }

    fn temporaries(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for d in ["index", "snapshots", "data", "keys", ""] {
            let mut found = Vec::new();
            if d.is_empty() {
                // Only the top level: the config and operators files.
                if let Ok(entries) = std::fs::read_dir(&self.root) {
                    for e in entries.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.starts_with(TMP) {
                            found.push(name);
                        }
                    }
                }
            } else {
                self.walk(&self.path(d), d, true, &mut found)?;
            }
            out.extend(found);
        }
        out.sort();
        Ok(out)
    }
}

// --- S3 ----------------------------------------------------------------------------------

/// A repository under a prefix of an S3 bucket, through `object_store`, driven by a runtime of
/// its own so that the engine's threads can call it synchronously.
pub struct S3 {
    url: String,
    prefix: String,
    store: object_store::aws::AmazonS3,
    /// Always `Some` until dropped.
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for S3 {
    fn drop(&mut self) {
        // Dropping a runtime may not block inside another runtime's thread.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn s3_err(what: &str) -> impl FnOnce(object_store::Error) -> Error + '_ {
    move |e| Error::Remote(format!("{what}: {e}"))
}

impl S3 {
    fn new(rest: &str) -> Result<S3> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Invalid(
                "s3:// needs a bucket: s3://bucket/prefix".into(),
            ));
        }
        let prefix = prefix.trim_matches('/').to_string();
        let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(ep) = ["AWS_ENDPOINT_URL", "PARAPET_S3_ENDPOINT"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|e| !e.is_empty()))
        {
            b = b
                .with_allow_http(ep.starts_with("http://"))
                .with_endpoint(ep)
                .with_virtual_hosted_style_request(false);
        }
        if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
            b = b.with_region("us-east-1");
        }
        let store = b
            .build()
            .map_err(|e| Error::Invalid(format!("s3://{rest}: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Remote(format!("cannot start the S3 client: {e}")))?;
        Ok(S3 {
            url: format!("s3://{bucket}/{prefix}"),
            prefix,
            store,
            rt: Some(rt),
        })
    }

    fn key(&self, name: &str) -> object_store::path::Path {
        if self.prefix.is_empty() {
            object_store::path::Path::from(name)
        } else {
            object_store::path::Path::from(format!("{}/{name}", self.prefix))
        }
    }

    fn relative(&self, key: &object_store::path::Path) -> String {
        let k = key.as_ref();
        if self.prefix.is_empty() {
            k.to_string()
        } else {
            k.strip_prefix(&format!("{}/", self.prefix))
                .unwrap_or(k)
                .to_string()
        }
    }

    /// Runs a request on the S3 runtime, from any thread (a runtime's worker or not).
    fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        let handle = self
            .rt
            .as_ref()
            .ok_or_else(|| Error::Remote("the S3 client has stopped".into()))?
            .handle()
            .clone();
        // `block_on` may not be called on a thread that is driving a runtime: hand the request
        // to the S3 runtime and wait for it on a plain channel.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| Error::Remote("the S3 request was abandoned".into()))
    }
}

impl Backend for S3 {
    fn location(&self) -> String {
        self.url.clone()
    }

    fn is_empty(&self) -> Result<bool> {
        Ok(self.list("")?.is_empty())
    }

    fn create(&self) -> Result<()> {
        Ok(())
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        use object_store::ObjectStoreExt;
        let store = self.store.clone();
        let key = self.key(name);
        let r = self.run(async move {
            match store.get(&key).await {
                Ok(g) => g.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        Ok(r.map_err(s3_err(name))?.map(|b| b.to_vec()))
    }

    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        use object_store::ObjectStoreExt;
        let store = self.store.clone();
        let key = self.key(name);
        let r = self.run(async move { store.get_range(&key, offset..offset + len).await })?;
        Ok(r.map_err(s3_err(name))?.to_vec())
    }

    fn write(&self, name: &str, bytes: &[u8], _sync: bool) -> Result<()> {
        use object_store::ObjectStoreExt;
        let store = self.store.clone();
        let key = self.key(name);
        let payload = object_store::PutPayload::from(bytes.to_vec());
        self.run(async move { store.put(&key, payload).await })?
            .map_err(s3_err(name))?;
        Ok(())
    }

    fn list(&self, dir: &str) -> Result<Vec<String>> {
        use futures_util::TryStreamExt;
        use object_store::ObjectStore;
        let store = self.store.clone();
        let prefix = if dir.is_empty() {
            if self.prefix.is_empty() {
                None
            } else {
                Some(object_store::path::Path::from(self.prefix.as_str()))
            }
        } else {
            Some(self.key(dir))
        };
        let metas = self.run(async move {
            store
                .list(prefix.as_ref())
                .try_collect::<Vec<object_store::ObjectMeta>>()
                .await
        })?;
        let mut out: Vec<String> = metas
            .map_err(s3_err(dir))?
            .iter()
            .map(|m| self.relative(&m.location))
            .collect();
        out.sort();
        Ok(out)
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        use object_store::ObjectStoreExt;
        let store = self.store.clone();
        let key = self.key(name);
        let r = self.run(async move {
            match store.head(&key).await {
                Ok(m) => Ok(Some(m.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        r.map_err(s3_err(name))
    }

    fn remove(&self, name: &str) -> Result<()> {
        use object_store::ObjectStoreExt;
        let store = self.store.clone();
        let key = self.key(name);
        let r = self.run(async move {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })?;
        r.map_err(s3_err(name))
    }

    fn temporaries(&self) -> Result<Vec<String>> {
        // An object store's writes are atomic: nothing is ever half written.
        Ok(Vec::new())
    }
}

// --- bandwidth limits --------------------------------------------------------------------

/// Time for [`Limited`]: a monotonic clock and a way to wait (the real ones, or a test's).
pub trait Pacer: Send + Sync {
    /// Time since some fixed origin.
    fn elapsed(&self) -> std::time::Duration;
    fn sleep(&self, d: std::time::Duration);
}

/// The real clock.
pub struct RealPacer(std::time::Instant);

impl Default for RealPacer {
    fn default() -> Self {
        RealPacer(std::time::Instant::now())
    }
}

impl Pacer for RealPacer {
    fn elapsed(&self) -> std::time::Duration {
        self.0.elapsed()
    }
    fn sleep(&self, d: std::time::Duration) {
        std::thread::sleep(d);
    }
}

/// One direction's rate: transfers are laid end to end on a schedule at `rate` bytes/s, and
/// each waits until its slot ends, so any run of transfers averages at most the rate.
struct Rate {
    bytes_per_sec: f64,
    /// When the schedule is next free.
    next: Mutex<std::time::Duration>,
}

impl Rate {
    fn pace(&self, pacer: &dyn Pacer, bytes: usize) {
        let now = pacer.elapsed();
        let slot = std::time::Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec);
        let end = match self.next.lock() {
            Ok(mut next) => {
                let start = (*next).max(now);
                *next = start + slot;
                *next
            }
            Err(_) => return,
        };
        if end > now {
            pacer.sleep(end - now);
        }
    }
}

/// A backend whose uploads and downloads are limited in bytes per second, so that backups do
/// not take the bandwidth tenants need (X.1642 8.10 "task arrangement").
pub struct Limited {
    inner: Arc<dyn Backend>,
    up: Option<Rate>,
    down: Option<Rate>,
    pacer: Arc<dyn Pacer>,
}

impl Limited {
    /// Limits in KiB/s; `None` leaves that direction free. A limit of 0 is refused.
    pub fn new(
        inner: Arc<dyn Backend>,
        upload_kib: Option<u64>,
        download_kib: Option<u64>,
        pacer: Arc<dyn Pacer>,
    ) -> Result<Limited> {
        let rate = |kib: Option<u64>, what: &str| -> Result<Option<Rate>> {
            match kib {
                None => Ok(None),
                Some(0) => Err(Error::Invalid(format!(
                    "the {what} limit must be at least 1 KiB/s"
                ))),
                Some(k) => Ok(Some(Rate {
                    bytes_per_sec: k as f64 * 1024.0,
                    next: Mutex::new(std::time::Duration::ZERO),
                })),
            }
        };
        Ok(Limited {
            inner,
            up: rate(upload_kib, "upload")?,
            down: rate(download_kib, "download")?,
            pacer,
        })
    }

    fn down(&self, bytes: usize) {
        if let Some(r) = &self.down {
            r.pace(self.pacer.as_ref(), bytes);
        }
    }
}

impl Backend for Limited {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn is_empty(&self) -> Result<bool> {
        self.inner.is_empty()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let r = self.inner.read(name)?;
        if let Some(b) = &r {
            self.down(b.len());
        }
        Ok(r)
    }
    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let b = self.inner.read_range(name, offset, len)?;
        self.down(b.len());
        Ok(b)
    }
    fn write(&self, name: &str, bytes: &[u8], sync: bool) -> Result<()> {
        if let Some(r) = &self.up {
            r.pace(self.pacer.as_ref(), bytes.len());
        }
        self.inner.write(name, bytes, sync)
    }
    fn list(&self, dir: &str) -> Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn size(&self, name: &str) -> Result<Option<u64>> {
        self.inner.size(name)
    }
    fn remove(&self, name: &str) -> Result<()> {
        self.inner.remove(name)
    }
    fn temporaries(&self) -> Result<Vec<String>> {
        self.inner.temporaries()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Duration;

    /// A clock that only moves when someone sleeps, recording the sleeps.
    #[derive(Default)]
    struct TestPacer {
        now: Mutex<Duration>,
        slept: Mutex<Vec<Duration>>,
    }
    impl Pacer for TestPacer {
        fn elapsed(&self) -> Duration {
            *self.now.lock().unwrap()
        }
        fn sleep(&self, d: Duration) {
            *self.now.lock().unwrap() += d;
            self.slept.lock().unwrap().push(d);
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("parapet-backend-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("data")).unwrap();
        d
    }

    #[test]
    fn uploads_and_downloads_average_at_most_the_limit() {
        let dir = scratch("limit");
        let pacer = Arc::new(TestPacer::default());
        let b = Limited::new(
            Arc::new(Local::new(&dir)),
            Some(200),
            Some(400),
            pacer.clone(),
        )
        .unwrap();
        let chunk = vec![7u8; 100 * 1024];
        for i in 0..10 {
            b.write(&format!("data/f{i}"), &chunk, false).unwrap();
        }
        // 1000 KiB at 200 KiB/s: 5 s of waiting in all, the files intact.
        let up = *pacer.now.lock().unwrap();
        assert!((up.as_secs_f64() - 5.0).abs() < 0.01, "{up:?}");
        for i in 0..10 {
            assert_eq!(b.read(&format!("data/f{i}")).unwrap().unwrap(), chunk);
        }
        // Reading the same at 400 KiB/s: 2.5 s more.
        let down = *pacer.now.lock().unwrap() - up;
        assert!((down.as_secs_f64() - 2.5).abs() < 0.01, "{down:?}");
        // Listing and sizes cost nothing.
        let before = pacer.slept.lock().unwrap().len();
        assert_eq!(b.list("data").unwrap().len(), 10);
        assert_eq!(b.size("data/f0").unwrap(), Some(100 * 1024));
        assert_eq!(pacer.slept.lock().unwrap().len(), before);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn time_spent_elsewhere_counts_towards_the_rate_and_zero_is_refused() {
        let dir = scratch("idle");
        let pacer = Arc::new(TestPacer::default());
        let b = Limited::new(Arc::new(Local::new(&dir)), Some(100), None, pacer.clone()).unwrap();
        // A transfer after a long pause does not wait for the time already past.
        pacer.sleep(Duration::from_secs(60));
        b.write("data/a", &vec![1u8; 50 * 1024], false).unwrap();
        let waits = pacer.slept.lock().unwrap().clone();
        assert_eq!(waits.len(), 2);
        assert!((waits[1].as_secs_f64() - 0.5).abs() < 0.01, "{waits:?}");
        // Downloads are free when only uploads are limited.
        b.read("data/a").unwrap();
        assert_eq!(pacer.slept.lock().unwrap().len(), 2);
        assert!(matches!(
            Limited::new(Arc::new(Local::new(&dir)), Some(0), None, pacer),
            Err(Error::Invalid(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
