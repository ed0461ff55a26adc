//! The AWS emulator as a child process: `scripts/aws-emulator` (moto + the LMI extension) on a
//! free port, ready when it says so, killed with its whole process group on drop.
//!
//! ```no_run
//! # async fn demo() -> Result<(), lmi_test_support::SupportError> {
//! let aws = lmi_test_support::AwsEmulator::start().await?;
//! let lambda = aws.lambda();
//! let providers = lambda.list_capacity_providers().send().await;
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;

use crate::error::SupportError;
use crate::sdk::{self, REGION};

const READY_PREFIX: &str = "LMI-EMULATOR READY ";
/// Lines of emulator output kept for error messages.
const KEPT_LINES: usize = 200;

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// How long capacity providers and published versions stay `Pending` (0: settled at once).
    pub state_delay: Duration,
    /// How long to wait for the emulator to listen. The first use on a machine installs its
    /// Python packages (about a minute), hence the generous default.
    pub ready_timeout: Duration,
    /// Log every request to the emulator's output (see [`AwsEmulator::recent_output`]).
    pub verbose: bool,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            state_delay: Duration::ZERO,
            ready_timeout: Duration::from_secs(600),
            verbose: false,
        }
    }
}

/// A running emulator. Dropping it kills the process group; if the test process dies without
/// dropping it, the emulator exits when its stdin (a pipe from this process) closes.
pub struct AwsEmulator {
    child: Child,
    _stdin: ChildStdin,
    endpoint: String,
    output: Arc<Mutex<VecDeque<String>>>,
}

impl AwsEmulator {
    /// Starts an emulator with the default options (states settle at once).
    pub async fn start() -> Result<AwsEmulator, SupportError> {
        Self::start_with(EmulatorOptions::default()).await
    }

    /// Starts an emulator on a free port of 127.0.0.1 and waits until it listens.
    pub async fn start_with(options: EmulatorOptions) -> Result<AwsEmulator, SupportError> {
        let script = script_path();
        let mut command = Command::new(&script);
        command
            .args(["--port", "0", "--exit-with-stdin"])
            .arg("--state-delay")
            .arg(options.state_delay.as_secs_f64().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if options.verbose {
            command.arg("--verbose");
        }
        let mut child = command
            .spawn()
            .map_err(|source| SupportError::SpawnEmulator {
                script: script.display().to_string(),
                source,
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill_group(&mut child);
            return Err(SupportError::EmulatorExited {
                output: "its standard streams were not captured".to_owned(),
            });
        };

        let output = Arc::new(Mutex::new(VecDeque::new()));
        let (ready_tx, ready_rx) = oneshot::channel();
        spawn_reader(stdout, Arc::clone(&output), Some(ready_tx));
        spawn_reader(stderr, Arc::clone(&output), None);

        let endpoint = match tokio::time::timeout(options.ready_timeout, ready_rx).await {
            Ok(Ok(endpoint)) => endpoint,
            Ok(Err(_closed)) => {
                kill_group(&mut child);
                return Err(SupportError::EmulatorExited {
                    output: joined(&output),
                });
            }
            Err(_elapsed) => {
                kill_group(&mut child);
                return Err(SupportError::EmulatorTimeout {
                    waited: options.ready_timeout,
                    output: joined(&output),
                });
            }
        };
        Ok(AwsEmulator {
            child,
            _stdin: stdin,
            endpoint,
            output,
        })
    }

    /// The emulator's URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// SDK configuration pointing at the emulator (test credentials, `us-east-1`). A test's
    /// own setup and inspection calls share the account's capacity-provider request rate (one
    /// write a second, as AWS's) with the operator under test, so these clients retry a
    /// throttled call patiently: up to ten attempts.
    pub fn sdk_config(&self) -> SdkConfig {
        sdk::sdk_config(&self.endpoint)
            .to_builder()
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(10))
            .build()
    }

    /// Environment variables pointing a child process's AWS SDK at the emulator.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        sdk::client_env(&self.endpoint)
    }

    /// A Lambda client for the emulator.
    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        sdk::lambda_client(&self.sdk_config())
    }

    /// An EC2 client for the emulator.
    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        sdk::ec2_client(&self.sdk_config())
    }

    /// Creates an IAM role Lambda can assume and returns its ARN (`path/name` puts it on a path,
    /// as tenants' roles are). moto's CreateFunction refuses
    /// roles that do not exist in its IAM.
    pub async fn create_role(&self, name: &str) -> Result<String, SupportError> {
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        // `lmi/team-a/search` is the role `search` on the path `/lmi/team-a/`.
        let (path, name) = match name.rsplit_once('/') {
            Some((path, name)) => (format!("/{path}/"), name),
            None => ("/".to_owned(), name),
        };
        let body = format!(
            "Action=CreateRole&Version=2010-05-08&RoleName={}&Path={}&AssumeRolePolicyDocument={}",
            form_encode(name),
            form_encode(&path),
            form_encode(policy)
        );
        let reply = self
            .post(
                "/",
                "application/x-www-form-urlencoded",
                Some(&signed_for("iam")),
                body,
            )
            .await?;
        between(&reply, "<Arn>", "</Arn>")
            .map(str::to_owned)
            .ok_or_else(|| SupportError::Control {
                path: "iam:CreateRole".to_owned(),
                message: reply,
            })
    }

    /// Stores an object in the emulator's S3, creating the bucket when it does not exist yet
    /// (for example a function's code zip, which CreateFunction reads from S3).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
    ) -> Result<(), SupportError> {
        let auth = signed_for("s3");
        let bucket_path = format!("/{}", form_encode(bucket));
        match self
            .send(
                http::Method::PUT,
                &bucket_path,
                "application/xml",
                Some(&auth),
                Bytes::new(),
            )
            .await
        {
            // Already there (moto answers 409 BucketAlreadyOwnedByYou outside us-east-1).
            Err(SupportError::Control { message, .. }) if message.contains("BucketAlready") => {}
            other => {
                other?;
            }
        }
        let key_path: Vec<String> = key.split('/').map(form_encode).collect();
        self.send(
            http::Method::PUT,
            &format!("{bucket_path}/{}", key_path.join("/")),
            "application/octet-stream",
            Some(&auth),
            Bytes::copy_from_slice(body),
        )
        .await
        .map(drop)
    }

    /// Changes how long new capacity providers and published versions stay `Pending`.
    pub async fn set_state_delay(&self, delay: Duration) -> Result<(), SupportError> {
        let body = format!(r#"{{"StateDelaySeconds": {}}}"#, delay.as_secs_f64());
        self.control("config", body).await
    }

    /// Lowers (or raises) the account quotas whose errors are otherwise hard to reach:
    /// `CapacityProviderLimitExceededException` and
    /// `FunctionVersionsPerCapacityProviderLimitExceededException`.
    pub async fn set_limits(
        &self,
        max_capacity_providers: u32,
        max_versions_per_capacity_provider: u32,
    ) -> Result<(), SupportError> {
        let body = format!(
            r#"{{"MaxCapacityProviders": {max_capacity_providers}, "MaxVersionsPerCapacityProvider": {max_versions_per_capacity_provider}}}"#
        );
        self.control("config", body).await
    }

    /// Sets the capacity-provider request rates the emulator allows per second (AWS's: 15 reads
    /// and 1 write; 0 lifts a limit).
    pub async fn set_request_rates(&self, reads: f64, writes: f64) -> Result<(), SupportError> {
        let body = format!(
            r#"{{"CapacityProviderReadsPerSecond": {reads}, "CapacityProviderWritesPerSecond": {writes}}}"#
        );
        self.control("config", body).await
    }

    /// Makes roles younger than `delay` not assumable by Lambda yet (IAM propagation), as
    /// CreateFunction and CreateCapacityProvider answer right after a role was created.
    pub async fn set_role_propagation(&self, delay: Duration) -> Result<(), SupportError> {
        let body = format!(r#"{{"RolePropagationSeconds": {}}}"#, delay.as_secs_f64());
        self.control("config", body).await
    }

    /// Makes the emulator refuse `actions` (e.g. `lambda:CreateCapacityProvider`,
    /// `ec2:DescribeVpcs`) as IAM refuses a caller whose policies do not allow them: HTTP 403
    /// `AccessDeniedException` (Lambda) or `UnauthorizedOperation` (EC2). An empty list allows
    /// everything again.
    pub async fn deny_actions(&self, actions: &[&str]) -> Result<(), SupportError> {
        let list: Vec<String> = actions.iter().map(|a| json_string(a)).collect();
        let body = format!(r#"{{"DeniedActions": [{}]}}"#, list.join(", "));
        self.control("config", body).await
    }

    /// Forces a capacity provider into `state` (e.g. `Failed`); `None` returns it to its natural
    /// lifecycle.
    pub async fn force_capacity_provider_state(
        &self,
        name: &str,
        state: Option<&str>,
    ) -> Result<(), SupportError> {
        let body = format!(
            r#"{{"CapacityProviderName": {}, "State": {}}}"#,
            json_string(name),
            state.map_or("null".to_owned(), json_string)
        );
        self.control("state", body).await
    }

    /// Forces a function version (`qualifier`: `$LATEST`, `$LATEST.PUBLISHED` or a number) on a
    /// capacity provider into `state`; `None` returns it to its natural lifecycle.
    pub async fn force_function_state(
        &self,
        function_name: &str,
        qualifier: &str,
        state: Option<&str>,
    ) -> Result<(), SupportError> {
        let body = format!(
            r#"{{"FunctionName": {}, "Qualifier": {}, "State": {}}}"#,
            json_string(function_name),
            json_string(qualifier),
            state.map_or("null".to_owned(), json_string)
        );
        self.control("state", body).await
    }

    /// Forces a published version into `Failed` with AWS's `StateReasonCode` and `StateReason`
    /// (as a version that could not start reports them).
    pub async fn fail_function_version(
        &self,
        function_name: &str,
        qualifier: &str,
        code: &str,
        reason: &str,
    ) -> Result<(), SupportError> {
        let body = format!(
            r#"{{"FunctionName": {}, "Qualifier": {}, "State": "Failed", "StateReasonCode": {}, "StateReason": {}}}"#,
            json_string(function_name),
            json_string(qualifier),
            json_string(code),
            json_string(reason)
        );
        self.control("state", body).await
    }

    /// The last lines the emulator printed (stdout and stderr), for diagnosing a failed test.
    pub fn recent_output(&self) -> Vec<String> {
        lock(&self.output).iter().cloned().collect()
    }

    async fn control(&self, name: &str, body: String) -> Result<(), SupportError> {
        self.post(
            &format!("/moto-api/lmi/{name}"),
            "application/json",
            None,
            body,
        )
        .await
        .map(drop)
    }

    async fn post(
        &self,
        path: &str,
        content_type: &str,
        authorization: Option<&str>,
        body: String,
    ) -> Result<String, SupportError> {
        self.send(
            http::Method::POST,
            path,
            content_type,
            authorization,
            Bytes::from(body),
        )
        .await
    }

    async fn send(
        &self,
        method: http::Method,
        path: &str,
        content_type: &str,
        authorization: Option<&str>,
        body: Bytes,
    ) -> Result<String, SupportError> {
        let failed = |message: String| SupportError::Control {
            path: path.to_owned(),
            message,
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.endpoint))
            .header(http::header::CONTENT_TYPE, content_type);
        if let Some(authorization) = authorization {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| failed(e.to_string()))?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        let response = client
            .request(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if status.is_success() {
            Ok(text)
        } else {
            Err(failed(format!("{status}: {text}")))
        }
    }
}

impl Drop for AwsEmulator {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

impl std::fmt::Debug for AwsEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsEmulator")
            .field("endpoint", &self.endpoint)
            .field("pid", &self.child.id())
            .finish()
    }
}

/// `scripts/aws-emulator` of this repository.
pub fn script_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/aws-emulator")
}

fn kill_group(child: &mut Child) {
    // The child leads its own process group (process_group(0)), so the group id is its pid.
    let group = rustix::process::Pid::from_child(child);
    // Already gone is fine: there is nothing left to stop.
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads lines into the shared buffer; the first ready line of stdout is sent on `ready`.
fn spawn_reader(
    stream: impl Read + Send + 'static,
    output: Arc<Mutex<VecDeque<String>>>,
    mut ready: Option<oneshot::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(endpoint) = line.strip_prefix(READY_PREFIX)
                && let Some(sender) = ready.take()
            {
                let _ = sender.send(endpoint.trim().to_owned());
            }
            let mut kept = lock(&output);
            if kept.len() == KEPT_LINES {
                kept.pop_front();
            }
            kept.push_back(line);
        }
        // Dropping an unused sender tells the waiting side the emulator exited.
    });
}

fn lock(output: &Mutex<VecDeque<String>>) -> std::sync::MutexGuard<'_, VecDeque<String>> {
    output
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn joined(output: &Mutex<VecDeque<String>>) -> String {
    lock(output).iter().cloned().collect::<Vec<_>>().join("\n")
}

/// moto checks neither signatures nor keys, but it routes unsigned-looking calls by the
/// credential scope of the Authorization header.
fn signed_for(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, \
         SignedHeaders=host, Signature=0"
    )
}

fn form_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(char::from(byte));
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

fn json_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if u32::from(c) < 0x20 => quoted.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_everything_but_unreserved_characters() {
        assert_eq!(form_encode("a b/{\"x\"}"), "a%20b%2F%7B%22x%22%7D");
    }

    #[test]
    fn json_strings_are_quoted_and_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn between_finds_the_first_enclosed_text() {
        assert_eq!(
            between("<Arn>x</Arn><Arn>y</Arn>", "<Arn>", "</Arn>"),
            Some("x")
        );
        assert_eq!(between("<Arn>x", "<Arn>", "</Arn>"), None);
    }
}
