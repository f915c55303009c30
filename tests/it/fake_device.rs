//! A stand-in router: a real SSH server on 127.0.0.1, in-process, answering configured
//! commands over exec channels or an interactive shell with the prompt "router#".

// Each test module uses a different subset of these helpers.
#![allow(dead_code)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::keys::{Algorithm, HashAlg, PrivateKey};
use russh::server::{self, Auth, Msg, Response, RunningServerHandle, Server as _, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Pty, cipher, kex, mac};
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The shell prompt of the fake device.
pub const PROMPT: &str = "router#";
/// What the fake device prints for a command it does not know.
pub const INVALID_INPUT: &str = "% Invalid input detected at '^' marker.\n";
const BANNER: &str = "\r\nFake router - authorised access only\r\n\r\n";

/// How the fake device behaves.
#[derive(Debug, Clone)]
pub struct FakeDeviceConfig {
    /// The only user that can sign in.
    pub username: String,
    /// That user's password.
    pub password: String,
    /// command → output; unknown commands print "% Invalid input detected" (exit status 1 in
    /// exec mode, on standard error).
    pub responses: HashMap<String, String>,
    /// Refuse exec requests (channel failure) so clients must use an interactive shell with
    /// prompt "router#".
    pub shell_only: bool,
    /// Delay before answering each command (to test timeouts and cancellation).
    pub delay: Duration,
    /// Offer only keyboard-interactive sign-in (an empty informational round, then a
    /// "Password:" prompt), as many network devices do.
    pub keyboard_interactive_only: bool,
    /// Offer only diffie-hellman-group14-sha1, aes128-cbc and hmac-sha1, like an old router.
    pub legacy_only: bool,
    /// Close exec channels without an exit status, like a command cut short.
    pub no_exit_status: bool,
}

impl FakeDeviceConfig {
    /// A device that accepts `username`/`password` by password authentication, knows no
    /// commands, and answers at once.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        FakeDeviceConfig {
            username: username.into(),
            password: password.into(),
            responses: HashMap::new(),
            shell_only: false,
            delay: Duration::ZERO,
            keyboard_interactive_only: false,
            legacy_only: false,
            no_exit_status: false,
        }
    }

    /// Adds a command and what it prints.
    pub fn respond(mut self, command: impl Into<String>, output: impl Into<String>) -> Self {
        self.responses.insert(command.into(), output.into());
        self
    }

    /// The output and exit status for `command`.
    fn answer(&self, command: &str) -> (String, u32) {
        match self.responses.get(command.trim()) {
            Some(output) => (output.clone(), 0),
            None => (INVALID_INPUT.to_owned(), 1),
        }
    }
}

/// A running fake device; stop it with [`FakeDevice::stop`] (dropping it also stops it).
pub struct FakeDevice {
    /// Where it listens (127.0.0.1, a free port unless chosen).
    pub addr: SocketAddr,
    /// Its host key's fingerprint, as `ssh-keygen -l` shows it ("SHA256:…").
    pub host_key_fingerprint: String,
    key: PrivateKey,
    seen: Arc<Mutex<Vec<String>>>,
    auth_attempts: Arc<AtomicUsize>,
    sessions: Arc<Sessions>,
    shutdown: RunningServerHandle,
    task: JoinHandle<()>,
}

impl FakeDevice {
    /// Starts a device with a new random ed25519 host key on a random free port.
    pub async fn start(config: FakeDeviceConfig) -> FakeDevice {
        FakeDevice::start_on(0, config, None).await
    }

    /// Starts a device on `port` of 127.0.0.1 (0 = any free port), with the host key of
    /// `same_key_as` or else a new random one. Starting on the port of a stopped device with a
    /// new key is how a test simulates a replaced device ("host key changed").
    pub async fn start_on(
        port: u16,
        config: FakeDeviceConfig,
        same_key_as: Option<&FakeDevice>,
    ) -> FakeDevice {
        let key = match same_key_as {
            Some(other) => other.key.clone(),
            None => PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
                .expect("generate an ed25519 host key"),
        };
        let host_key_fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();

        let socket = TcpSocket::new_v4().expect("create a socket");
        // Lets a restarted device take the port back while old connections are in TIME_WAIT.
        socket.set_reuseaddr(true).expect("set SO_REUSEADDR");
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .unwrap_or_else(|e| panic!("fake device cannot bind 127.0.0.1:{port}: {e}"));
        let listener = socket.listen(64).expect("listen");
        let addr = listener.local_addr().expect("local address");

        let server_config = Arc::new(server_config(&config, key.clone()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let auth_attempts = Arc::new(AtomicUsize::new(0));
        let sessions = Arc::new(Sessions::default());
        let mut device = Device {
            config: Arc::new(config),
            seen: Arc::clone(&seen),
            auth_attempts: Arc::clone(&auth_attempts),
            sessions: Arc::clone(&sessions),
        };
        let (handle_tx, handle_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let running = device.run_on_socket(server_config, &listener);
            let _ = handle_tx.send(running.handle());
            if let Err(e) = running.await {
                eprintln!("fake device on {addr} stopped: {e}");
            }
        });
        let shutdown = handle_rx.await.expect("fake device started");
        FakeDevice {
            addr,
            host_key_fingerprint,
            key,
            seen,
            auth_attempts,
            sessions,
            shutdown,
            task,
        }
    }

    /// How many client connections the device has accepted so far.
    pub fn sessions_total(&self) -> usize {
        self.sessions.total.load(Ordering::SeqCst)
    }

    /// The most client connections the device ever had open at the same time.
    pub fn sessions_at_once(&self) -> usize {
        self.sessions.max_open.load(Ordering::SeqCst)
    }

    /// Every command the device ran (exec or shell), in order; refused exec requests are not
    /// included.
    pub fn commands_seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many password or keyboard-interactive sign-ins clients have attempted.
    pub fn auth_attempts(&self) -> usize {
        self.auth_attempts.load(Ordering::SeqCst)
    }

    /// Disconnects every client and closes the listening socket.
    pub async fn stop(mut self) {
        self.shutdown.shutdown("device stopped".into());
        let _ = (&mut self.task).await;
    }
}

impl Drop for FakeDevice {
    fn drop(&mut self) {
        self.shutdown.shutdown("device dropped".into());
    }
}

fn server_config(config: &FakeDeviceConfig, key: PrivateKey) -> server::Config {
    let method = if config.keyboard_interactive_only {
        MethodKind::KeyboardInteractive
    } else {
        MethodKind::Password
    };
    let mut preferred = russh::Preferred::default();
    if config.legacy_only {
        preferred.kex = Cow::Borrowed(&[kex::DH_G14_SHA1]);
        preferred.cipher = Cow::Borrowed(&[cipher::AES_128_CBC]);
        preferred.mac = Cow::Borrowed(&[mac::HMAC_SHA1]);
    }
    server::Config {
        keys: vec![key],
        methods: MethodSet::from(&[method][..]),
        preferred,
        // Real devices pause after a wrong password; tests should not.
        auth_rejection_time: Duration::from_millis(10),
        auth_rejection_time_initial: Some(Duration::ZERO),
        nodelay: true,
        ..server::Config::default()
    }
}

/// Client connections: open now, most open at once, accepted in all.
#[derive(Debug, Default)]
struct Sessions {
    open: AtomicUsize,
    max_open: AtomicUsize,
    total: AtomicUsize,
}

/// Counts a connection as open for as long as it lives.
struct OpenSession(Arc<Sessions>);

impl OpenSession {
    fn new(sessions: &Arc<Sessions>) -> Self {
        sessions.total.fetch_add(1, Ordering::SeqCst);
        let open = sessions.open.fetch_add(1, Ordering::SeqCst) + 1;
        sessions.max_open.fetch_max(open, Ordering::SeqCst);
        OpenSession(Arc::clone(sessions))
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Creates one [`Connection`] per client.
struct Device {
    config: Arc<FakeDeviceConfig>,
    seen: Arc<Mutex<Vec<String>>>,
    auth_attempts: Arc<AtomicUsize>,
    sessions: Arc<Sessions>,
}

impl server::Server for Device {
    type Handler = Connection;

    fn new_client(&mut self, _peer: Option<SocketAddr>) -> Connection {
        Connection {
            config: Arc::clone(&self.config),
            seen: Arc::clone(&self.seen),
            auth_attempts: Arc::clone(&self.auth_attempts),
            shells: HashMap::new(),
            kbd_round: 0,
            _open: OpenSession::new(&self.sessions),
        }
    }
}

/// One client's session.
struct Connection {
    config: Arc<FakeDeviceConfig>,
    seen: Arc<Mutex<Vec<String>>>,
    auth_attempts: Arc<AtomicUsize>,
    shells: HashMap<ChannelId, ShellInput>,
    kbd_round: u8,
    _open: OpenSession,
}

/// A shell channel's partial input line and the queue of complete lines to its worker.
struct ShellInput {
    line: Vec<u8>,
    last_was_cr: bool,
    lines: mpsc::UnboundedSender<String>,
}

impl Connection {
    fn record(&self, command: &str) {
        record(&self.seen, command);
    }
}

fn record(seen: &Mutex<Vec<String>>, command: &str) {
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(command.to_owned());
}

impl server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        self.auth_attempts.fetch_add(1, Ordering::SeqCst);
        if self.config.keyboard_interactive_only {
            return Ok(Auth::Reject {
                proceed_with_methods: Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..])),
                partial_success: false,
            });
        }
        if user == self.config.username && password == self.config.password {
            Ok(Auth::Accept)
        } else {
            // Like OpenSSH: the client may try the password again.
            Ok(Auth::Reject {
                proceed_with_methods: Some(MethodSet::from(&[MethodKind::Password][..])),
                partial_success: false,
            })
        }
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        if !self.config.keyboard_interactive_only {
            return Ok(Auth::reject());
        }
        let Some(mut response) = response else {
            self.auth_attempts.fetch_add(1, Ordering::SeqCst);
            // An informational round with no prompts, as some devices send before asking.
            self.kbd_round = 1;
            return Ok(Auth::Partial {
                name: "".into(),
                instructions: "Authorised access only".into(),
                prompts: Cow::Borrowed(&[]),
            });
        };
        if self.kbd_round == 1 {
            self.kbd_round = 2;
            return Ok(Auth::Partial {
                name: "".into(),
                instructions: "".into(),
                prompts: Cow::Owned(vec![(Cow::Borrowed("Password: "), false)]),
            });
        }
        self.kbd_round = 0;
        let answer = response.next();
        let correct = answer.is_some_and(|a| a[..] == *self.config.password.as_bytes());
        if user == self.config.username && correct {
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The Channel is dropped: everything goes through the handler callbacks instead, and a
        // Channel nobody reads would eventually stall the session.
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.config.shell_only {
            session.channel_failure(channel)?;
            return Ok(());
        }
        session.channel_success(channel)?;
        let command = String::from_utf8_lossy(data).into_owned();
        self.record(&command);
        let (output, status) = self.config.answer(&command);
        let delay = self.config.delay;
        let no_exit_status = self.config.no_exit_status;
        let handle = session.handle();
        // Answering from a task keeps the session responsive while a command is "running".
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let sent = if status == 0 {
                handle.data(channel, output.into_bytes()).await
            } else {
                handle.extended_data(channel, 1, output.into_bytes()).await
            };
            if sent.is_err() {
                return;
            }
            if !no_exit_status {
                let _ = handle.exit_status_request(channel, status).await;
            }
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        session.data(channel, format!("{BANNER}{PROMPT}").into_bytes())?;
        let (lines, mut queue) = mpsc::unbounded_channel::<String>();
        self.shells.insert(
            channel,
            ShellInput {
                line: Vec::new(),
                last_was_cr: false,
                lines,
            },
        );
        let handle = session.handle();
        let config = Arc::clone(&self.config);
        let seen = Arc::clone(&self.seen);
        // One worker per shell answers lines in order, however long each takes.
        tokio::spawn(async move {
            while let Some(line) = queue.recv().await {
                let command = line.trim();
                if command.is_empty() {
                    let _ = handle.data(channel, PROMPT.as_bytes().to_vec()).await;
                    continue;
                }
                if command == "exit" {
                    let _ = handle.eof(channel).await;
                    let _ = handle.close(channel).await;
                    return;
                }
                record(&seen, command);
                tokio::time::sleep(config.delay).await;
                let (output, _) = config.answer(command);
                let mut text = output.replace("\r\n", "\n").replace('\n', "\r\n");
                if !text.is_empty() && !text.ends_with("\r\n") {
                    text.push_str("\r\n");
                }
                text.push_str(PROMPT);
                if handle.data(channel, text.into_bytes()).await.is_err() {
                    return;
                }
            }
        });
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(shell) = self.shells.get_mut(&channel) else {
            return Ok(());
        };
        // A terminal echoes what is typed and ends lines with "\r\n"; "\r\n" typed counts as
        // one line end.
        let mut echo = Vec::with_capacity(data.len() + 1);
        for &byte in data {
            match byte {
                b'\n' if shell.last_was_cr => {}
                b'\r' | b'\n' => {
                    echo.extend_from_slice(b"\r\n");
                    let line = String::from_utf8_lossy(&shell.line).into_owned();
                    shell.line.clear();
                    let _ = shell.lines.send(line);
                }
                _ => {
                    echo.push(byte);
                    shell.line.push(byte);
                }
            }
            shell.last_was_cr = byte == b'\r';
        }
        session.data(channel, echo)?;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.shells.remove(&channel);
        Ok(())
    }
}
