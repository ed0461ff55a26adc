//! `lmi-test-apiserver`: the in-memory API server as a process, for the local sandbox and for
//! poking at it with kubectl. Writes the kubeconfig once it is serving; serves until killed.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use lmi_test_apiserver::TestApiServer;

#[derive(Parser)]
#[command(
    version,
    about = "In-memory Kubernetes API server for tests and the local sandbox"
)]
struct Args {
    /// Address to listen on (plain HTTP), e.g. 127.0.0.1:8080; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the kubeconfig once the server is serving.
    #[arg(long)]
    kubeconfig_out: PathBuf,
    /// Directory of CRD manifests (YAML or JSON) to install before serving.
    #[arg(long)]
    crds: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lmi-test-apiserver: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), lmi_test_apiserver::ServerError> {
    let server = TestApiServer::start_on(args.listen).await?;
    for dir in &args.crds {
        let n = server.load_crds(dir)?;
        eprintln!(
            "lmi-test-apiserver: installed {n} CRD(s) from {}",
            dir.display()
        );
    }
    server.write_kubeconfig(&args.kubeconfig_out)?;
    eprintln!(
        "lmi-test-apiserver: serving {} (kubeconfig {})",
        server.url(),
        args.kubeconfig_out.display()
    );
    shutdown_signal().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
