//! Child processes that never outlive the test process: each is started in its own process
//! group, through `setpriv --pdeathsig KILL` (util-linux) when it is there, from one long-lived
//! thread — the kernel then kills the child when the test process dies however it dies, and
//! [`Supervised`] kills the group when dropped (also when a test panics).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};

use crate::error::SupportError;

/// A running child process, with its output in a log file.
pub struct Supervised {
    child: Child,
    /// What it is, for messages.
    pub name: String,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

type Request = (Command, Sender<std::io::Result<Child>>);

/// The thread children are spawned from: a parent-death signal fires when the *thread* that
/// spawned the child ends, so it must be one that lives as long as the process.
fn spawner() -> &'static Mutex<Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (requests, incoming) = channel::<Request>();
        std::thread::Builder::new()
            .name("lmi-test-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the spawner thread");
        Mutex::new(requests)
    })
}

fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            ["/usr/bin/setpriv", "/bin/setpriv"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        })
        .as_deref()
}

/// A port nothing listens on at the moment, on 127.0.0.1.
pub(crate) fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()
        .map(|a| a.port())
}

impl Supervised {
    /// Starts `program` with `args` and the extra environment `env`, its output appended to
    /// `log`.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: PathBuf,
    ) -> Result<Supervised, SupportError> {
        let fail = |e: std::io::Error| {
            SupportError::ControlPlane(format!("start {name} ({}): {e}", program.display()))
        };
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(fail)?;
        let err = out.try_clone().map_err(fail)?;
        let mut command = match setpriv() {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let (reply, answer) = channel();
        spawner()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send((command, reply))
            .map_err(|_| SupportError::ControlPlane("the spawner thread is gone".into()))?;
        let child = answer
            .recv()
            .map_err(|_| SupportError::ControlPlane("the spawner thread is gone".into()))?
            .map_err(fail)?;
        Ok(Supervised {
            child,
            name: name.to_owned(),
            log,
        })
    }

    /// Whether it has exited (with its status).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of its log.
    pub fn tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGKILL of the whole group; waits for it.
    pub fn kill(&mut self) {
        let group = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.kill();
    }
}
