//! Spawning `turnpike` processes. Each child is killed when its handle is
//! dropped, so a failing test leaves nothing running; its output goes to a
//! log file that is printed when the test fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use crate::binaries::{data_plane_bin, free_port, turnpike_bin};
use crate::{Answer, Http, wait_for};

pub struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, args: &[String]) -> Proc {
        Self::spawn_with_env(name, args, &[])
    }

    /// [`Proc::spawn`] with environment changes: `Some` sets a variable,
    /// `None` removes it (`TURNPIKE_LOG` is `info` unless changed here).
    pub fn spawn_with_env(name: &str, args: &[String], env: &[(&str, Option<&str>)]) -> Proc {
        Self::spawn_program(turnpike_bin(), name, args, env)
    }

    /// [`Proc::spawn_with_env`] of another program (e.g. [`data_plane_bin`]).
    pub fn spawn_program(
        program: &std::path::Path,
        name: &str,
        args: &[String],
        env: &[(&str, Option<&str>)],
    ) -> Proc {
        let dir = std::env::temp_dir().join("turnpike-e2e");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(program);
        command.env("TURNPIKE_LOG", "info");
        for (k, v) in env {
            match v {
                Some(v) => command.env(k, v),
                None => command.env_remove(k),
            };
        }
        let child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Proc {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit; returns its status code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("{} did not exit within {timeout:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- log of {} -----\n{}", self.name, self.log());
        }
        self.kill();
    }
}

pub struct ControlPlane {
    pub proc: Proc,
    pub admin: String,
    pub cluster: String,
    pub database_url: String,
    pub admin_token: String,
    pub cluster_token: String,
    admin_port: u16,
    cluster_port: u16,
    extra_args: Vec<String>,
    http: Http,
}

impl ControlPlane {
    /// Starts a control plane on `database_url` and waits until it is ready.
    pub async fn start(database_url: &str) -> ControlPlane {
        Self::start_args(database_url, &[]).await
    }

    /// [`ControlPlane::start`] with extra flags (e.g. cluster TLS).
    pub async fn start_args(database_url: &str, extra: &[String]) -> ControlPlane {
        let token = format!("admin-{}", uuid::Uuid::new_v4().simple());
        let cluster_token = format!("cluster-{}", uuid::Uuid::new_v4().simple());
        let ports = (free_port(), free_port());
        Self::start_with(database_url, ports, token, cluster_token, extra).await
    }

    async fn start_with(
        database_url: &str,
        (admin_port, cluster_port): (u16, u16),
        admin_token: String,
        cluster_token: String,
        extra: &[String],
    ) -> ControlPlane {
        let mut args: Vec<String> = [
            "control-plane",
            "--database-url",
            database_url,
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
            "--cluster-listen",
            &format!("127.0.0.1:{cluster_port}"),
            "--admin-token",
            &admin_token,
            "--cluster-token",
            &cluster_token,
        ]
        .map(String::from)
        .to_vec();
        args.extend_from_slice(extra);
        let cp = ControlPlane {
            proc: Proc::spawn("control-plane", &args),
            admin: format!("http://127.0.0.1:{admin_port}"),
            cluster: format!("http://127.0.0.1:{cluster_port}"),
            database_url: database_url.to_owned(),
            admin_token,
            cluster_token,
            admin_port,
            cluster_port,
            extra_args: extra.to_vec(),
            http: Http::default(),
        };
        let url = format!("{}/readyz", cp.admin);
        wait_for("control plane ready", Duration::from_secs(60), || async {
            matches!(cp.http.get(&url).await, Ok(a) if a.status == StatusCode::OK).then_some(())
        })
        .await;
        cp
    }

    /// Starts a new process with the same database, ports and tokens.
    pub async fn restart(&mut self) {
        self.proc.kill();
        let fresh = Self::start_with(
            &self.database_url,
            (self.admin_port, self.cluster_port),
            self.admin_token.clone(),
            self.cluster_token.clone(),
            &self.extra_args,
        )
        .await;
        *self = fresh;
    }

    /// Starts another control plane on the same database with the same
    /// tokens (and extra flags), on ports of its own: a second replica.
    pub async fn start_peer(&self) -> ControlPlane {
        Self::start_with(
            &self.database_url,
            (free_port(), free_port()),
            self.admin_token.clone(),
            self.cluster_token.clone(),
            &self.extra_args,
        )
        .await
    }

    /// One admin API call with the admin token.
    pub async fn api(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Answer {
        let auth = format!("Bearer {}", self.admin_token);
        self.http
            .send(
                method,
                &format!("{}/api/v1{path}", self.admin),
                &[("authorization", &auth)],
                body,
            )
            .await
            .expect("admin API reachable")
    }

    /// Waits until every listed data plane reports `version` as applied in
    /// the fleet view.
    pub async fn wait_for_fleet(&self, nodes: &[&DataPlane], version: u64) {
        wait_for(
            &format!("fleet on version {version}"),
            Duration::from_secs(30),
            || async {
                let fleet = self.api(Method::GET, "/data-planes", None).await.json();
                let items = fleet["items"].as_array().cloned().unwrap_or_default();
                let all = nodes.iter().all(|dp| {
                    items.iter().any(|i| {
                        i["node_id"] == dp.node_id.as_str()
                            && i["connected"] == true
                            && i["config_version"].as_u64() >= Some(version)
                    })
                });
                all.then_some(())
            },
        )
        .await;
    }
}

pub struct DataPlane {
    pub proc: Proc,
    pub node_id: String,
    pub proxy: String,
    pub status: String,
    http: Http,
}

impl DataPlane {
    /// Starts a data plane (not waiting for a config).
    pub fn start(control_planes: &str, cluster_token: &str) -> DataPlane {
        Self::start_args(control_planes, cluster_token, &[])
    }

    /// [`DataPlane::start`] with extra flags (e.g. cluster TLS).
    pub fn start_args(control_planes: &str, cluster_token: &str, extra: &[String]) -> DataPlane {
        Self::launch(None, control_planes, cluster_token, extra)
    }

    /// A data plane run by the `turnpike-data-plane` binary rather than
    /// `turnpike data-plane`: the same flags.
    pub fn start_standalone(
        control_planes: &str,
        cluster_token: &str,
        extra: &[String],
    ) -> DataPlane {
        Self::launch(Some(data_plane_bin()), control_planes, cluster_token, extra)
    }

    fn launch(
        program: Option<&std::path::Path>,
        control_planes: &str,
        cluster_token: &str,
        extra: &[String],
    ) -> DataPlane {
        let proxy_port = free_port();
        let status_port = free_port();
        let node_id = format!("dp-{}", uuid::Uuid::new_v4().simple());
        let mut args: Vec<String> = [
            "data-plane",
            "--control-plane",
            control_planes,
            "--proxy-listen",
            &format!("127.0.0.1:{proxy_port}"),
            "--status-listen",
            &format!("127.0.0.1:{status_port}"),
            "--cluster-token",
            cluster_token,
            "--node-id",
            &node_id,
            "--worker-threads",
            "1",
        ]
        .map(String::from)
        .to_vec();
        args.extend_from_slice(extra);
        let proc = match program {
            // The standalone binary has no subcommand.
            Some(program) => Proc::spawn_program(program, &node_id, &args[1..], &[]),
            None => Proc::spawn(&node_id, &args),
        };
        DataPlane {
            proc,
            node_id,
            proxy: format!("http://127.0.0.1:{proxy_port}"),
            status: format!("http://127.0.0.1:{status_port}"),
            http: Http::default(),
        }
    }

    pub async fn status(&self) -> Option<serde_json::Value> {
        self.status_json("/status").await
    }

    /// A JSON endpoint of the status port (`/status`, `/upstreams`).
    pub async fn status_json(&self, path: &str) -> Option<serde_json::Value> {
        let a = self
            .http
            .get(&format!("{}{path}", self.status))
            .await
            .ok()?;
        (a.status == StatusCode::OK).then(|| a.json())
    }

    /// Waits until this data plane runs at least `version`.
    pub async fn wait_for_version(&self, version: u64) {
        wait_for(
            &format!("{} on version {version}", self.node_id),
            Duration::from_secs(30),
            || async {
                let s = self.status().await?;
                (s["config_version"].as_u64()? >= version).then_some(())
            },
        )
        .await;
    }

    pub async fn wait_for_connected(&self, connected: bool) {
        wait_for(
            &format!("{} connected={connected}", self.node_id),
            Duration::from_secs(30),
            || async {
                let s = self.status().await?;
                (s["control_plane_connected"] == connected).then_some(())
            },
        )
        .await;
    }

    /// A request through the proxy.
    pub async fn get(&self, path_and_query: &str) -> Answer {
        self.http
            .get(&format!("{}{path_and_query}", self.proxy))
            .await
            .expect("proxy reachable")
    }
}

pub struct Echo {
    pub proc: Proc,
    pub addr: String,
    pub name: String,
}

impl Echo {
    pub async fn start(name: &str) -> Echo {
        Self::start_on(name, &format!("127.0.0.1:{}", free_port())).await
    }

    /// [`Echo::start`] on a given address, e.g. that of an echo killed
    /// earlier, to bring a target back.
    pub async fn start_on(name: &str, addr: &str) -> Echo {
        let addr = addr.to_owned();
        let args: Vec<String> = ["echo", "--listen", &addr, "--name", name]
            .map(String::from)
            .to_vec();
        let echo = Echo {
            proc: Proc::spawn(name, &args),
            addr,
            name: name.to_owned(),
        };
        let http = Http::default();
        let url = format!("http://{}/", echo.addr);
        wait_for(
            &format!("echo {name} up"),
            Duration::from_secs(30),
            || async { http.get(&url).await.ok().map(|_| ()) },
        )
        .await;
        echo
    }
}

/// Drops a test database (after its control plane has exited).
pub fn drop_database(name: &str) {
    let _ = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-qc"])
        .arg(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Asserts that `method` on the admin API answered `expected`.
pub fn assert_status(answer: &Answer, expected: StatusCode) {
    assert_eq!(
        answer.status,
        expected,
        "unexpected answer: {}",
        String::from_utf8_lossy(&answer.body)
    );
}
