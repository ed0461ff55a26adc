//! The Lambda runner: a package under AWS's Runtime Interface Emulator is invoked, its function
//! errors are told from answers, and nothing it started outlives it (also when a test panics).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lmi_test_support::lambda::{EnvironmentOptions, ExecutionEnvironment};

/// A tiny runtime in Python (what `provided.al2023` would run as `bootstrap`): one thread per
/// `AWS_LAMBDA_MAX_CONCURRENCY` slot polling `/next`; `{"fail": ...}` is a function error, anything
/// else is echoed with the slots and the process id. It writes its pid to `$PID_DIR/pid`.
const RUNTIME: &str = r#"#!/usr/bin/env python3
import json, os, threading, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
with open(os.path.join(os.environ["PID_DIR"], "pid"), "w") as f:
    f.write(str(os.getpid()))
def post(url, body, headers={}):
    urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST"))
def worker():
    while True:
        with urllib.request.urlopen(api + "next") as r:
            rid, event = r.headers["Lambda-Runtime-Aws-Request-Id"], json.loads(r.read() or b"null")
        if isinstance(event, dict) and "fail" in event:
            post(api + rid + "/error", {"errorType": "Refused", "errorMessage": event["fail"]},
                 {"Lambda-Runtime-Function-Error-Type": "Function.Refused"})
        else:
            post(api + rid + "/response", {"echo": event, "slots": os.environ["AWS_LAMBDA_MAX_CONCURRENCY"], "pid": os.getpid()})
threads = [threading.Thread(target=worker, daemon=True) for _ in range(int(os.environ["AWS_LAMBDA_MAX_CONCURRENCY"]))]
for t in threads: t.start()
for t in threads: t.join()
"#;

/// The package zip and a world-writable directory for the runtime's pid.
fn package(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("lmi-lambda-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let zip = dir.join("package.zip");
    let mut writer = zip::ZipWriter::new(std::fs::File::create(&zip).expect("zip"));
    let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    writer.start_file("bootstrap", options).expect("entry");
    writer.write_all(RUNTIME.as_bytes()).expect("write");
    writer.finish().expect("finish");
    (zip, dir)
}

fn options(dir: &Path) -> EnvironmentOptions {
    EnvironmentOptions {
        env: vec![("PID_DIR".into(), dir.display().to_string())],
        concurrency: 3,
        ..EnvironmentOptions::default()
    }
}

async fn runtime_pid(dir: &Path) -> u32 {
    let started = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the runtime never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn gone(pid: u32) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_is_invoked_and_its_function_errors_are_told_apart() {
    let (zip, dir) = package("invoke");
    let env = ExecutionEnvironment::start(&zip, &options(&dir))
        .await
        .expect("start");
    let answer = env.invoke(br#"{"hello": "world"}"#).await.expect("invoke");
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["echo"]["hello"], "world", "{body}");
    assert_eq!(
        body["slots"], "3",
        "AWS_LAMBDA_MAX_CONCURRENCY reaches the runtime: {body}"
    );
    assert_eq!(answer.error_type(), None);

    let failed = env
        .invoke(br#"{"fail": "no thanks"}"#)
        .await
        .expect("invoke");
    assert_eq!(
        failed.error_type().as_deref(),
        Some("Refused"),
        "{:?}",
        failed.json()
    );
    assert_eq!(failed.json()["errorMessage"], "no thanks");
    // The emulator's log has the invocations.
    assert!(env.log().contains("START RequestId"), "{}", env.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outlives_the_environment_even_when_a_test_panics() {
    // Dropped normally.
    let (zip, dir) = package("drop");
    let env = ExecutionEnvironment::start(&zip, &options(&dir))
        .await
        .expect("start");
    let pid = runtime_pid(&dir).await;
    drop(env);
    assert!(
        gone(pid).await,
        "the runtime {pid} outlived its environment"
    );

    // Dropped by a panic unwinding through the test.
    let (zip, dir) = package("panic");
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let task = tokio::spawn({
        let dir = dir.clone();
        async move {
            let _env = ExecutionEnvironment::start(&zip, &options(&dir))
                .await
                .expect("start");
            started_tx.send(runtime_pid(&dir).await).expect("send");
            panic!("a test fails while the environment runs");
        }
    });
    assert!(task.await.is_err_and(|e| e.is_panic()));
    let pid = started_rx.recv().expect("pid");
    assert!(
        gone(pid).await,
        "the runtime {pid} outlived a panicking test"
    );
}
