//! Idle connections cannot use up the controller's open files: with the
//! controller at the limit a systemd service gets by default (1024 open
//! files, soft and hard), one address holds 1,100 idle TLS connections
//! without a client certificate on the agent/operator port, 1,100 HTTP/2
//! prefaces on the health listener, 1,100 unfinished `GET /metrics` on the
//! metrics listener, and raw TCP connects from several addresses on the
//! dashboard — and throughout, the CLI answers and a new agent enrolls and
//! comes online.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tierwise_e2e::{binary, Agent, Controller, Plays, V931};
use tierwise_transport::client::{client_config, Trust};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connections each flood keeps open (opening them again as the controller
/// closes them).
const FLOOD: usize = 1_100;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// This test process opens thousands of sockets: its soft open-file limit
/// goes up to its hard limit.
fn raise_own_open_files() {
    let pid = std::process::id().to_string();
    let hard = Command::new("prlimit")
        .args([
            "--pid",
            &pid,
            "--nofile",
            "--raw",
            "--noheadings",
            "--output",
            "HARD",
        ])
        .output()
        .unwrap();
    let hard = String::from_utf8(hard.stdout).unwrap().trim().to_owned();
    let set = Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={hard}:{hard}")])
        .status()
        .unwrap();
    assert!(set.success(), "cannot raise this test's open-file limit");
}

/// How one flood connection opens and then holds still.
#[derive(Clone)]
enum Kind {
    /// A finished TLS handshake without a client certificate, then nothing.
    IdleTls(Arc<rustls::ClientConfig>),
    /// The HTTP/2 preface and an empty SETTINGS frame, then nothing.
    Http2Preface,
    /// `GET /metrics` whose headers never end.
    UnfinishedGet,
    /// A TCP connection that never speaks.
    RawTcp,
}

/// Connections from `from` (one address each, round robin) to `to`, kept
/// open: each is opened again two seconds after the controller closes it
/// (or refuses it).
struct Flood {
    stop: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    /// Attempts that got through their opening (or failed it).
    tried: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Flood {
    fn start(kind: Kind, from: &[&str], to: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(AtomicUsize::new(0));
        let tried = Arc::new(AtomicUsize::new(0));
        let tasks = (0..FLOOD)
            .map(|i| {
                let source: SocketAddr = format!("{}:0", from[i % from.len()]).parse().unwrap();
                let (kind, stop, open, tried) =
                    (kind.clone(), stop.clone(), open.clone(), tried.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = hold(&kind, source, to, &open, &tried).await;
                        // Pacing, not waiting for a condition: the flood
                        // comes back two seconds after it was closed.
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            open,
            tried,
            tasks,
        }
    }

    /// Connections open right now, and attempts so far.
    fn counts(&self) -> (usize, usize) {
        (
            self.open.load(Ordering::Relaxed),
            self.tried.load(Ordering::Relaxed),
        )
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

/// How long a flood connection may take to open before it counts as
/// refused.
const OPENING: Duration = Duration::from_secs(10);

/// Opens one connection of `kind` and holds it until the controller closes it.
async fn hold(
    kind: &Kind,
    from: SocketAddr,
    to: SocketAddr,
    open: &AtomicUsize,
    tried: &AtomicUsize,
) -> std::io::Result<()> {
    let opening = tokio::time::timeout(OPENING, async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(from)?;
        let mut tcp: TcpStream = socket.connect(to).await?;
        match kind {
            Kind::IdleTls(config) => {
                let name = rustls::pki_types::ServerName::IpAddress(to.ip().into());
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(Held::Tls(Box::new(tls)))
            }
            Kind::Http2Preface | Kind::UnfinishedGet | Kind::RawTcp => {
                let hello: &[u8] = match kind {
                    Kind::Http2Preface => {
                        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                    }
                    Kind::UnfinishedGet => b"GET /metrics HTTP/1.1\r\nHost: controller\r\n",
                    _ => b"",
                };
                tcp.write_all(hello).await?;
                Ok(Held::Tcp(tcp))
            }
        }
    })
    .await;
    tried.fetch_add(1, Ordering::Relaxed);
    let mut held = opening.map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    open.fetch_add(1, Ordering::Relaxed);
    let mut buf = [0u8; 4096];
    loop {
        let read = match &mut held {
            Held::Tls(tls) => tls.read(&mut buf).await,
            Held::Tcp(tcp) => tcp.read(&mut buf).await,
        };
        if read.unwrap_or(0) == 0 {
            break;
        }
    }
    open.fetch_sub(1, Ordering::Relaxed);
    Ok(())
}

enum Held {
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Tcp(TcpStream),
}

/// Runs `tierwise hosts list` as the admin, killed after `limit`; how long
/// it took to answer.
fn cli_answers(controller: &Controller, limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let mut child = Command::new(binary("tierwise"))
        .arg("--controller")
        .arg(controller.url())
        .arg("--ca-cert")
        .arg(controller.ca_path())
        .env("TIERWISE_TOKEN", controller.admin_token().unwrap())
        .env_remove("TIERWISE_TOKEN_FILE")
        .args(["hosts", "list"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let took = started.elapsed();
            if status.success() {
                return Ok(took);
            }
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
            }
            return Err(format!("the CLI failed after {took:?}: {stderr}"));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the CLI did not answer within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long each flood is held while the CLI is measured: past the
/// controller's idle deadlines (10 s on the agent/operator port), so the
/// flood comes back after it was closed.
const HOLD: Duration = Duration::from_secs(15);

/// While `flood` is held: the CLI answers again and again, and a new agent
/// enrolls and comes online. Prints the times.
async fn still_served(
    what: &str,
    controller: &Controller,
    root: &std::path::Path,
    host: &str,
    flood: &Flood,
) -> Agent {
    let started = Instant::now();
    tokio::task::block_in_place(|| {
        tierwise_e2e::wait_for(
            &format!("the {what} flood to try {FLOOD} connections"),
            Duration::from_secs(120),
            || Ok((flood.counts().1 >= FLOOD).then_some(())),
        )
    })
    .unwrap();
    let agent = Agent::start(root, &controller.url(), host, Plays::Client, V931).unwrap();
    let online =
        tokio::task::block_in_place(|| controller.wait_online(host, true, Duration::from_secs(60)))
            .unwrap_or_else(|e| panic!("during the {what} flood: {e:#}"));
    let mut answers = Vec::new();
    tokio::task::block_in_place(|| {
        tierwise_e2e::wait_for(
            &format!("{HOLD:?} of the {what} flood"),
            HOLD + Duration::from_secs(120),
            || {
                let took = cli_answers(controller, Duration::from_secs(60))
                    .unwrap_or_else(|e| panic!("during the {what} flood: {e}"));
                answers.push(took);
                Ok((started.elapsed() >= HOLD).then_some(()))
            },
        )
    })
    .unwrap();
    let (open, tried) = flood.counts();
    answers.sort();
    eprintln!(
        "{what}: the CLI answered {} times in {:?} (median), {:?} at most; agent {host} came \
         online in {online:?} ({open} flood connections open at the end, {tried} tried in all)",
        answers.len(),
        answers[answers.len() / 2],
        answers[answers.len() - 1],
    );
    agent
}

/// TLS as a browser speaks it to the dashboard: HTTP/1.1, no client
/// certificate.
fn browser(controller: &Controller) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(controller.ca_certificate().unwrap()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(tierwise_transport::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_on_every_listener_do_not_lock_anyone_out() {
    raise_own_open_files();
    let root = tempfile::tempdir().unwrap();
    let health: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let ui: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (health_flag, metrics_flag, ui_flag) =
        (health.to_string(), metrics.to_string(), ui.to_string());
    let controller = Controller::start_with_open_files(
        &root.path().join("controller"),
        "127.0.0.1:0",
        &[
            "--health-listen",
            &health_flag,
            "--metrics-listen",
            &metrics_flag,
            "--ui-listen",
            &ui_flag,
        ],
        1024,
    )
    .unwrap();
    let _first = Agent::start(
        root.path(),
        &controller.url(),
        "cl-first",
        Plays::Client,
        V931,
    )
    .unwrap();
    tokio::task::block_in_place(|| {
        controller.wait_online("cl-first", true, Duration::from_secs(30))
    })
    .unwrap();
    let mut agents = Vec::new();

    // 1,100 finished TLS handshakes without a client certificate, idle,
    // from one address.
    let tls = client_config(&Trust::Ca(vec![controller.ca_certificate().unwrap()]), None).unwrap();
    let flood = Flood::start(Kind::IdleTls(tls), &["127.0.0.2"], controller.addr);
    agents.push(still_served("idle TLS", &controller, root.path(), "cl-tls", &flood).await);
    flood.stop().await;

    // The same from 20 addresses, 55 each: within each address's share,
    // so the port's total (from the open-file limit) is what holds.
    let tls = client_config(&Trust::Ca(vec![controller.ca_certificate().unwrap()]), None).unwrap();
    let sources: Vec<String> = (20..40).map(|i| format!("127.0.0.{i}")).collect();
    let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
    let flood = Flood::start(Kind::IdleTls(tls), &sources, controller.addr);
    agents.push(
        still_served(
            "idle TLS from 20 addresses",
            &controller,
            root.path(),
            "cl-tls20",
            &flood,
        )
        .await,
    );
    flood.stop().await;

    // 1,100 HTTP/2 prefaces on the plaintext health listener.
    let flood = Flood::start(Kind::Http2Preface, &["127.0.0.3"], health);
    agents.push(still_served("HTTP/2 preface", &controller, root.path(), "cl-h2", &flood).await);
    flood.stop().await;

    // 1,100 unfinished `GET /metrics`.
    let flood = Flood::start(Kind::UnfinishedGet, &["127.0.0.4"], metrics);
    agents.push(
        still_served(
            "unfinished GET /metrics",
            &controller,
            root.path(),
            "cl-get",
            &flood,
        )
        .await,
    );
    flood.stop().await;

    // Raw TCP connects to the dashboard from nine addresses, more than
    // its slots: a browser still gets its login page.
    let sources: Vec<String> = (10..19).map(|i| format!("127.0.0.{i}")).collect();
    let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
    let flood = Flood::start(Kind::RawTcp, &sources, ui);
    tokio::task::block_in_place(|| {
        tierwise_e2e::wait_for(
            "the dashboard flood to try its connections",
            Duration::from_secs(120),
            || Ok((flood.counts().1 >= FLOOD).then_some(())),
        )
    })
    .unwrap();
    let browser = tokio_rustls::TlsConnector::from(browser(&controller));
    let mut pages = Vec::new();
    let started = Instant::now();
    // A page load four times a second for as long as the flood is held.
    let mut every = tokio::time::interval(Duration::from_millis(250));
    while started.elapsed() < HOLD {
        every.tick().await;
        let began = Instant::now();
        let page = tokio::time::timeout(Duration::from_secs(60), async {
            let tcp = TcpStream::connect(ui).await?;
            let name = rustls::pki_types::ServerName::IpAddress(ui.ip().into());
            let mut tls = browser.connect(name, tcp).await?;
            tls.write_all(b"GET /login HTTP/1.1\r\nHost: controller\r\nConnection: close\r\n\r\n")
                .await?;
            let mut page = Vec::new();
            tls.read_to_end(&mut page).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&page).into_owned())
        })
        .await
        .expect("the login page within 60 s")
        .unwrap();
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        pages.push(began.elapsed());
    }
    pages.sort();
    let cli =
        tokio::task::block_in_place(|| cli_answers(&controller, Duration::from_secs(60))).unwrap();
    let (open, tried) = flood.counts();
    eprintln!(
        "dashboard raw TCP: the login page loaded {} times in {:?} (median), {:?} at most; \
         the CLI answered in {cli:?} ({open} flood connections open at the end, {tried} tried in all)",
        pages.len(),
        pages[pages.len() / 2],
        pages[pages.len() - 1],
    );
    flood.stop().await;

    let log = controller.process.log_text();
    assert!(
        log.contains("open_files=1024"),
        "the controller logs its open-file limit:\n{log}"
    );
    let emfile: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Too many open files"))
        .collect();
    eprintln!(
        "\"Too many open files\" in the controller's log: {} times {:?}",
        emfile.len(),
        &emfile[..emfile.len().min(3)]
    );
    drop(agents);
}
