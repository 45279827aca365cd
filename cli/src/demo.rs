//! `turnpike demo`: the docker-compose topology as local processes. A
//! control plane, N data planes and two echo upstreams run as children of
//! this process; a route is seeded; Ctrl-C stops them all.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::{Method, StatusCode};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::admin_client::AdminClient;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// How many data planes to start.
    #[arg(long, default_value_t = 2)]
    data_planes: u16,
    #[arg(
        long,
        env = "TURNPIKE_DEMO_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/turnpike_demo"
    )]
    database_url: String,
    /// Where the children's logs and data-plane cache dirs go.
    #[arg(long, default_value_os_t = std::env::temp_dir().join("turnpike-demo"))]
    dir: PathBuf,
}

struct Proc {
    name: String,
    child: Child,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.data_planes == 0 || args.data_planes > 9 {
        return Err(turnpike_cli::common::UsageError("--data-planes must be 1 to 9".into()).into());
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let exe = std::env::current_exe()?;
    let admin_token = std::env::var("TURNPIKE_ADMIN_TOKEN")
        .unwrap_or_else(|_| format!("demo-admin-{}", uuid::Uuid::new_v4().simple()));
    let cluster_token = format!("demo-cluster-{}", uuid::Uuid::new_v4().simple());
    let admin = "127.0.0.1:8001";
    let cluster = "127.0.0.1:8005";
    let echoes = ["127.0.0.1:9001", "127.0.0.1:9002"];

    let mut procs = Vec::new();
    let started = async {
        for (i, addr) in echoes.iter().enumerate() {
            let name = format!("echo-{}", i + 1);
            procs.push(spawn(
                &exe,
                &args.dir,
                &name,
                &["echo", "--listen", addr, "--name", &name],
            )?);
        }
        procs.push(spawn(
            &exe,
            &args.dir,
            "control-plane",
            &[
                "control-plane",
                "--database-url",
                &args.database_url,
                "--admin-listen",
                admin,
                "--cluster-listen",
                cluster,
                "--admin-token",
                &admin_token,
                "--cluster-token",
                &cluster_token,
            ],
        )?);
        let client = AdminClient::new(format!("http://{admin}"), admin_token.clone());
        wait_until("the control plane", &mut procs, || async {
            matches!(
                client.call(Method::GET, "/readyz", None).await,
                Ok((StatusCode::OK, _))
            )
        })
        .await?;
        seed(&client, &echoes).await?;

        let mut data_planes = Vec::new();
        for i in 0..args.data_planes {
            let name = format!("data-plane-{}", i + 1);
            let proxy = format!("127.0.0.1:{}", 8000 + 10 * i);
            let status = format!("127.0.0.1:{}", 8100 + 10 * i);
            let cache = args.dir.join(&name);
            procs.push(spawn(
                &exe,
                &args.dir,
                &name,
                &[
                    "data-plane",
                    "--control-plane",
                    &format!("http://{cluster}"),
                    "--proxy-listen",
                    &proxy,
                    "--status-listen",
                    &status,
                    "--cluster-token",
                    &cluster_token,
                    "--cache-dir",
                    &cache.to_string_lossy(),
                    "--worker-threads",
                    "1",
                ],
            )?);
            data_planes.push((proxy, status));
        }
        for (_, status) in &data_planes {
            let probe = AdminClient::new(format!("http://{status}"), String::new());
            wait_until("a data plane", &mut procs, || async {
                matches!(
                    probe.call(Method::GET, "/readyz", None).await,
                    Ok((StatusCode::OK, _))
                )
            })
            .await?;
        }
        print_banner(&args, admin, &admin_token, &data_planes);
        Ok::<(), anyhow::Error>(())
    }
    .await;

    let outcome = match started {
        Ok(()) => wait_for_exit(&mut procs).await,
        Err(e) => Err(e),
    };
    stop_all(&mut procs).await;
    outcome
}

fn spawn(exe: &PathBuf, dir: &std::path::Path, name: &str, args: &[&str]) -> anyhow::Result<Proc> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(Proc {
        name: name.to_owned(),
        child,
    })
}

/// Polls `ready` until it holds, failing early if a child died.
async fn wait_until<F, Fut>(what: &str, procs: &mut [Proc], ready: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready().await {
        for p in procs.iter_mut() {
            if let Some(status) = p.child.try_wait()? {
                bail!(
                    "{} exited ({status}) while waiting for {what}; see its log",
                    p.name
                );
            }
        }
        if Instant::now() > deadline {
            bail!("{what} was not ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn seed(client: &AdminClient, echoes: &[&str]) -> anyhow::Result<()> {
    let targets: Vec<_> = echoes
        .iter()
        .map(|a| serde_json::json!({"address": a}))
        .collect();
    client
        .upsert(
            "upstreams",
            "demo-echo",
            &serde_json::json!({"name": "demo-echo", "targets": targets, "tags": ["demo"]}),
        )
        .await?;
    client
        .upsert(
            "routes",
            "demo",
            &serde_json::json!({"name": "demo", "paths": ["/"], "upstream": "demo-echo", "tags": ["demo"]}),
        )
        .await
}

fn print_banner(args: &DemoArgs, admin: &str, token: &str, data_planes: &[(String, String)]) {
    println!(
        "\nTurnpike demo is running ({} data planes). Logs: {}\n",
        data_planes.len(),
        args.dir.display()
    );
    println!("  console:     http://{admin}/   (paste the admin token)");
    println!("  admin API:   http://{admin}/api/v1");
    println!("  admin token: {token}");
    for (i, (proxy, status)) in data_planes.iter().enumerate() {
        println!(
            "  data plane {}: proxy http://{proxy}  status http://{status}/status",
            i + 1
        );
    }
    let first = &data_planes[0].0;
    println!("\nTry:");
    println!("  curl -s http://{first}/hello            # answered by echo-1 and echo-2 in turn");
    println!("  curl -s -H 'Authorization: Bearer {token}' http://{admin}/api/v1/data-planes");
    println!(
        "  curl -s -X POST -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n       -d '{{\"name\":\"only-echo-2\",\"targets\":[{{\"address\":\"127.0.0.1:9002\"}}]}}' http://{admin}/api/v1/upstreams"
    );
    println!(
        "  curl -s -X PATCH -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n       -d '{{\"upstream\":\"only-echo-2\"}}' http://{admin}/api/v1/routes/demo"
    );
    println!("\nPress Ctrl-C to stop everything.");
}

/// Returns when Ctrl-C (or SIGTERM) arrives, or fails when a child dies.
async fn wait_for_exit(procs: &mut [Proc]) -> anyhow::Result<()> {
    let mut signal = turnpike_cli::common::shutdown_signal();
    loop {
        tokio::select! {
            _ = signal.wait_for(|s| *s) => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        for p in procs.iter_mut() {
            if let Some(status) = p.child.try_wait()? {
                bail!("{} exited unexpectedly ({status}); see its log", p.name);
            }
        }
    }
}

/// SIGTERM to every child, then SIGKILL to any still running after 15 s.
async fn stop_all(procs: &mut [Proc]) {
    for p in procs.iter() {
        if let Some(pid) = p.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for p in procs.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(15), p.child.wait())
            .await
            .is_err()
        {
            eprintln!("{} did not stop in time; killing it", p.name);
            let _ = p.child.kill().await;
        }
    }
    eprintln!("demo stopped; nothing left running");
}
