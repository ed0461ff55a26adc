//! `lmi-operator`: the operator binary.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lmi_operator::api::crdgen;
use lmi_operator::iam::{self, PolicyOptions};
use lmi_operator::run::{self, RunArgs};

#[derive(Parser)]
#[command(
    name = "lmi-operator",
    version,
    about = "Runs AWS Lambda Managed Instances from Git"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers against the cluster from KUBECONFIG (or in-cluster) and AWS from
    /// the default credential chain (AWS_ENDPOINT_URL, AWS_REGION, IRSA and Pod Identity
    /// honoured).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML (a multi-document stream), or write one file
    /// per CRD into a directory.
    Crds {
        /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print the operator's least-privilege IAM policy (JSON) for this installation: the
    /// path of the roles it may pass, the buckets handler code may come from, optionally pinned
    /// to one installation. `deploy/iam/operator-policy.json` is its output with the defaults.
    IamPolicy(PolicyOptions),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds { out } => print_crds(out),
        Command::IamPolicy(options) => {
            print!("{}", iam::to_json(&iam::policy(&options)));
            Ok(())
        }
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run::run(*args)),
    }
}

fn print_crds(out: Option<PathBuf>) -> anyhow::Result<()> {
    let crds = crdgen::all();
    match out {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in &crds {
                let path = dir.join(crdgen::file_name(crd));
                std::fs::write(&path, crdgen::to_yaml(crd)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        None => {
            let docs = crds
                .iter()
                .map(crdgen::to_yaml)
                .collect::<Result<Vec<_>, _>>()?;
            print!("{}", docs.join("---\n"));
        }
    }
    Ok(())
}
