//! The handler under AWS's own Lambda runtime: the Runtime Interface Emulator
//! (`aws-lambda-rie`) in its Managed Instances mode runs a packaged `bootstrap` zip the way
//! Lambda does — unpacked into `/var/task` (bound in a private mount namespace, so several run
//! side by side), the function's environment, `AWS_LAMBDA_MAX_CONCURRENCY` concurrent `/next`
//! long-polls — and this module invokes it and reads what it printed.
//!
//! The emulator comes from `$LMI_LAMBDA_RIE`, else `.tools/bin/aws-lambda-rie` (where
//! `scripts/fetch-tools` links `../shared/lambda/bin/aws-lambda-rie`). Starting it needs root
//! (a mount namespace), as on the machines and CI this runs on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::SupportError;
use crate::process::Supervised;

/// How long [`ExecutionEnvironment::invoke`] keeps retrying while no runtime slot is free.
pub const UNAVAILABLE_PATIENCE: Duration = Duration::from_secs(60);

/// Where the emulator is: `$LMI_LAMBDA_RIE`, else `.tools/bin/aws-lambda-rie`.
pub fn rie_path() -> PathBuf {
    match std::env::var_os("LMI_LAMBDA_RIE") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/aws-lambda-rie"),
    }
}

/// The architecture of a package's `bootstrap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Runs natively here.
    X86_64,
    /// Runs through `qemu-aarch64-static` (Debian's `qemu-user-static`).
    Arm64,
}

/// How the execution environment is configured.
#[derive(Clone, Debug)]
pub struct EnvironmentOptions {
    /// The function's environment (catalog, dimensions, model id, endpoint overrides, ...).
    pub env: Vec<(String, String)>,
    /// `AWS_LAMBDA_MAX_CONCURRENCY`: invocations in flight at once.
    pub concurrency: u32,
    /// `AWS_LAMBDA_FUNCTION_TIMEOUT`, whole seconds.
    pub timeout: Duration,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, MiB.
    pub memory_mib: u32,
    /// The package's architecture.
    pub arch: Arch,
}

impl Default for EnvironmentOptions {
    fn default() -> Self {
        EnvironmentOptions {
            env: Vec::new(),
            concurrency: 8,
            timeout: Duration::from_secs(30),
            memory_mib: 2048,
            arch: Arch::X86_64,
        }
    }
}

/// What an invocation got back.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// HTTP status of the invoke.
    pub status: u16,
    /// The body: the function's response, or `{"errorType", "errorMessage"}` for an error.
    pub body: Bytes,
    /// How long the invoke took, as the client saw it (retries included).
    pub elapsed: Duration,
}

impl Invocation {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// `errorType` when the function (or the runtime) answered with an error.
    pub fn error_type(&self) -> Option<String> {
        let json = self.json();
        let error = json.get("errorType")?.as_str()?.to_owned();
        json.get("errorMessage").is_some().then_some(error)
    }
}

/// One execution environment: the emulator running one package, until dropped.
pub struct ExecutionEnvironment {
    process: Supervised,
    address: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    _dir: tempfile::TempDir,
}

fn fail(what: impl std::fmt::Display) -> SupportError {
    SupportError::LambdaRuntime(what.to_string())
}

/// Unpacks `zip` into `dir` with the modes it records (entries that would escape `dir` are
/// refused by the zip crate).
fn unpack(zip: &Path, dir: &Path) -> Result<(), SupportError> {
    let file =
        std::fs::File::open(zip).map_err(|e| fail(format!("open {}: {e}", zip.display())))?;
    zip::ZipArchive::new(file)
        .and_then(|mut archive| archive.extract(dir))
        .map_err(|e| fail(format!("unpack {}: {e}", zip.display())))
}

fn free_address() -> Result<SocketAddr, SupportError> {
    crate::process::free_port()
        .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        .map_err(|e| fail(format!("find a free port: {e}")))
}

impl ExecutionEnvironment {
    /// Unpacks the package `zip` and starts the emulator on it; returns once the emulator
    /// listens. The emulator runs the function's init as it starts (as Managed Instances
    /// initialise an execution environment before routing invocations to it); a failed init
    /// stops it, so use [`ExecutionEnvironment::spawn`] to watch one fail.
    pub async fn start(
        zip: &Path,
        options: &EnvironmentOptions,
    ) -> Result<ExecutionEnvironment, SupportError> {
        let mut environment = Self::spawn(zip, options)?;
        environment.wait_listening().await?;
        Ok(environment)
    }

    /// Like [`ExecutionEnvironment::start`], without waiting for the emulator to listen.
    pub fn spawn(
        zip: &Path,
        options: &EnvironmentOptions,
    ) -> Result<ExecutionEnvironment, SupportError> {
        let rie = rie_path();
        if !rie.is_file() {
            return Err(fail(format!(
                "{} is missing: run scripts/fetch-tools (it links ../shared/lambda/bin/aws-lambda-rie), \
                 or point LMI_LAMBDA_RIE at the emulator",
                rie.display()
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("lmi-lambda-")
            .tempdir()
            .map_err(fail)?;
        let task = dir.path().join("task");
        std::fs::create_dir_all(&task).map_err(fail)?;
        unpack(zip, &task)?;
        if !task.join("bootstrap").is_file() {
            return Err(fail(format!(
                "{} has no bootstrap at its root",
                zip.display()
            )));
        }
        if options.arch == Arch::Arm64 {
            // The kernel cannot run an aarch64 binary here: Lambda's `/var/task/bootstrap` is a
            // script that starts the real one through qemu's user-mode emulator.
            std::fs::rename(task.join("bootstrap"), task.join("bootstrap.arm64")).map_err(fail)?;
            let wrapper = task.join("bootstrap");
            std::fs::write(
                &wrapper,
                "#!/bin/sh\nexec qemu-aarch64-static /var/task/bootstrap.arm64 \"$@\"\n",
            )
            .map_err(fail)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
                .map_err(fail)?;
        }
        std::fs::create_dir_all("/var/task")
            .map_err(|e| fail(format!("create the mount point /var/task: {e}")))?;
        let address = free_address()?;
        let runtime_api = free_address()?;
        let script = format!(
            "mount --bind {task} /var/task && cd /var/task && exec env -i {env} {rie} \
             --runtime-interface-emulator-address {address} --runtime-api-address {runtime_api}",
            task = shell_quote(&task.display().to_string()),
            env = environment(options)
                .iter()
                .map(|(k, v)| shell_quote(&format!("{k}={v}")))
                .collect::<Vec<_>>()
                .join(" "),
            rie = shell_quote(&rie.display().to_string()),
        );
        let process = Supervised::start(
            "aws-lambda-rie",
            Path::new("/usr/bin/unshare"),
            &[
                "--mount".into(),
                "--propagation".into(),
                "private".into(),
                "sh".into(),
                "-c".into(),
                script,
            ],
            &[],
            dir.path().join("rie.log"),
        )?;
        Ok(ExecutionEnvironment {
            process,
            address,
            client: Client::builder(TokioExecutor::new()).build_http(),
            _dir: dir,
        })
    }

    async fn wait_listening(&mut self) -> Result<(), SupportError> {
        let start = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(self.address).await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self.process.exited() {
                return Err(fail(format!(
                    "the emulator exited ({status}) before it listened:\n{}",
                    self.process.tail(30)
                )));
            }
            if start.elapsed() > Duration::from_secs(20) {
                return Err(fail(format!(
                    "the emulator did not listen within 20 s:\n{}",
                    self.process.tail(30)
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Invokes the function with `payload`, as Lambda's Invoke does.
    ///
    /// The emulator routes an invocation only to a runtime slot that is polling `/next`, and
    /// answers `Runtime.Unavailable` at once when none is (it has no queue). Lambda's front end
    /// does not send an invocation to an environment without a free slot either: it throttles,
    /// and the SDKs retry. So does this client: it retries `Runtime.Unavailable` with a short
    /// backoff for up to [`UNAVAILABLE_PATIENCE`].
    pub async fn invoke(&self, payload: &[u8]) -> Result<Invocation, SupportError> {
        let start = Instant::now();
        let mut retries = 0u32;
        loop {
            let (status, body) = self.invoke_once(payload).await?;
            // The emulator answers it with a 4xx; answers and function errors come with 200.
            let unavailable = status != 200
                && serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .is_some_and(|v| v["errorType"] == "Runtime.Unavailable");
            if !unavailable || start.elapsed() > UNAVAILABLE_PATIENCE {
                return Ok(Invocation {
                    status,
                    body,
                    elapsed: start.elapsed(),
                });
            }
            retries += 1;
            let backoff = Duration::from_millis(u64::from(retries.min(20)));
            tokio::time::sleep(backoff).await;
        }
    }

    async fn invoke_once(&self, payload: &[u8]) -> Result<(u16, Bytes), SupportError> {
        let request = http::Request::post(format!(
            "http://{}/2015-03-31/functions/function/invocations",
            self.address
        ))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::copy_from_slice(payload)))
        .map_err(fail)?;
        let response = self.client.request(request).await.map_err(|e| {
            fail(format!(
                "invoke: {e}; the emulator's log:\n{}",
                self.process.tail(20)
            ))
        })?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(format!("read the answer: {e}")))?
            .to_bytes();
        Ok((status, body))
    }

    /// Invokes with a JSON payload.
    pub async fn invoke_json(
        &self,
        payload: &serde_json::Value,
    ) -> Result<Invocation, SupportError> {
        self.invoke(payload.to_string().as_bytes()).await
    }

    /// Everything the emulator and the function printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.process.log).unwrap_or_default()
    }

    /// Whether the emulator has stopped (a failed init or a runtime that exited stop it).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exited()
    }
}

/// The emulator's environment: the function's, and what Lambda sets for the runtime.
fn environment(options: &EnvironmentOptions) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
        (
            "AWS_LAMBDA_MAX_CONCURRENCY".to_owned(),
            options.concurrency.to_string(),
        ),
        (
            "AWS_LAMBDA_FUNCTION_TIMEOUT".to_owned(),
            options.timeout.as_secs().max(1).to_string(),
        ),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(),
            options.memory_mib.to_string(),
        ),
    ];
    for (k, v) in &options.env {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Maximum-size hostile requests for the similarity handler, `size` bytes each (keep it under
/// Lambda's 6 MB payload), by name: arrays far past their limits, huge and escaped strings,
/// an image that is none, a large ignored field, and the same inside an HTTP event's body.
/// Each must be refused with a 4xx (the handler tests) at a bounded memory cost (the bench).
pub fn hostile_requests(size: usize) -> Vec<(&'static str, Vec<u8>)> {
    let fill = |head: &str, item: &str, sep: &str, tail: &str| {
        let mut s = String::from(head);
        while s.len() + item.len() + sep.len() + tail.len() < size {
            s.push_str(item);
            s.push_str(sep);
        }
        s.push_str(item);
        s.push_str(tail);
        s.into_bytes()
    };
    let vector = String::from_utf8(fill("{\"vector\": [", "0.125", ",", "]}")).expect("utf8");
    let escaped = serde_json::to_string(&vector).expect("json string");
    vec![
        ("vector far past the dimension", vector.clone().into_bytes()),
        (
            "excludeIds far past the limit",
            fill("{\"productId\": \"p\", \"excludeIds\": [", "\"x\"", ",", "]}"),
        ),
        ("text of 6 MB", fill("{\"text\": \"", "word", " ", "\"}")),
        ("image that is no image", fill("{\"image\": \"", "AAAA", "", "\"}")),
        (
            "a large ignored field",
            fill("{\"productId\": \"p\", \"junk\": [", "[1, {\"a\": [2]}]", ",", "]}"),
        ),
        (
            "escaped text",
            fill("{\"text\": \"", "\\u0041", "", "\"}"),
        ),
        (
            "HTTP body with a vector far past the dimension",
            format!(
                "{{\"requestContext\": {{\"http\": {{\"method\": \"POST\"}}}}, \"body\": {escaped}}}"
            )
            .into_bytes(),
        ),
    ]
}
