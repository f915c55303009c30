//! SSH sessions to network devices: connect, check the host key, sign in, run commands.
//!
//! One [`SshSession`] per device, reused for several commands (a new channel on an open
//! session costs well under a millisecond; a new connection costs a key exchange). Commands
//! run on exec channels; devices that refuse exec get one interactive shell instead, driven by
//! prompt detection.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use russh::client::{self, AuthResult, KeyboardInteractiveAuthResponse};
use russh::keys::{HashAlg, PublicKeyOrCertificate};
use russh::{AlgorithmKind, ChannelMsg, Disconnect, MethodKind, cipher, kex, mac};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

/// How long a fresh shell must stay silent before its last line is taken as the prompt:
/// banners and MOTDs arrive in bursts, and the prompt is whatever ends the last one.
const SHELL_QUIET: Duration = Duration::from_millis(300);
/// A prompt longer than this is more likely a line of banner text than a prompt.
const MAX_PROMPT_LEN: usize = 128;
/// Bytes of recent shell output kept for prompt matching once the output cap is reached.
const PROMPT_TAIL: usize = 2048;
/// Beyond `max_output`, room for the echoed command, the prompt and stray carriage returns,
/// which are stripped before the cap is applied.
const SHELL_SLACK: usize = 4096;
/// Bound on keyboard-interactive rounds, so a misbehaving server cannot keep us asking forever.
const MAX_KBD_ROUNDS: usize = 8;
/// Upper bound for the polite goodbye, so closing never hangs on a dead connection.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where and how to sign in.
#[derive(Clone)]
pub struct SshTarget {
    /// The device's management address.
    pub host: IpAddr,
    /// The SSH port, usually 22.
    pub port: u16,
    /// The user to sign in as.
    pub username: String,
    /// The password, also used to answer keyboard-interactive password prompts; `None` tries
    /// the "none" method, which only lab devices accept.
    pub password: Option<String>,
    /// Fingerprint ("SHA256:…") accepted earlier (trust on first use); None = first contact.
    pub known_host_key: Option<String>,
    /// Limit for reaching the device, the SSH handshake and authentication together.
    pub connect_timeout: Duration,
    /// Also offer diffie-hellman-group14-sha1 / aes128-cbc / hmac-sha1 for old devices.
    pub legacy_algorithms: bool,
}

// Hand-written so that logging a target never prints its password.
impl fmt::Debug for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("known_host_key", &self.known_host_key)
            .field("connect_timeout", &self.connect_timeout)
            .field("legacy_algorithms", &self.legacy_algorithms)
            .finish()
    }
}

/// Why an SSH operation failed; each message says what happened and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The device could not be reached, refused the connection, or dropped it.
    #[error("SSH connection failed: {0}")]
    Connect(String),
    /// Something did not finish in time; the message says what.
    #[error("SSH timeout: {0}")]
    Timeout(String),
    /// The device presented a different host key than the one accepted earlier. The session
    /// was dropped before authenticating, so no credential was sent.
    #[error(
        "the device's SSH host key changed: expected {expected}, presented {presented}; \
         accept the new key if the change is expected (device replaced or reinstalled), \
         otherwise treat it as a possible man-in-the-middle"
    )]
    HostKeyChanged {
        /// The fingerprint accepted earlier.
        expected: String,
        /// The fingerprint the device presented now.
        presented: String,
    },
    /// The device rejected the credential.
    #[error("SSH authentication failed: {0}; check the device's credential")]
    Auth(String),
    /// The device did something this client cannot work with.
    #[error("SSH protocol error: {0}")]
    Protocol(String),
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Standard output and standard error, interleaved as received, decoded as UTF-8 (invalid
    /// bytes replaced); in shell mode without the echoed command and the trailing prompt, with
    /// `\n` line endings.
    pub output: String,
    /// The command's exit status: always present in exec mode, `None` in shell mode, where
    /// devices do not report one.
    pub exit_status: Option<u32>,
    /// The output exceeded `max_output` bytes and the rest was discarded.
    pub truncated: bool,
    /// The command ran in an interactive shell because the device refuses exec requests.
    pub via_shell: bool,
}

/// An authenticated SSH connection to one device.
pub struct SshSession {
    handle: client::Handle<ClientHandler>,
    addr: SocketAddr,
    host_key: String,
    // Set once the device has refused an exec request: from then on every command goes to the
    // shell, so the device is not asked (and does not log a refusal) each time.
    exec_refused: bool,
    shell: Option<Shell>,
    // Set when the connection can no longer be used, with the reason for later calls.
    closed: Option<&'static str>,
    // What `run` is doing, so a timeout can say where it got stuck.
    phase: &'static str,
}

impl fmt::Debug for SshSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshSession")
            .field("addr", &self.addr)
            .field("host_key", &self.host_key)
            .field("via_shell", &self.exec_refused)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// The interactive shell used for devices that refuse exec.
struct Shell {
    channel: russh::Channel<client::Msg>,
    prompt: String,
}

/// Records the presented host key and accepts it only if it matches the expected one.
struct ClientHandler {
    expected: Option<String>,
    presented: Arc<OnceLock<String>>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let fingerprint = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256),
            // Certificates are only presented when asked for, which this client never does;
            // should one arrive anyway, pin the certified key like a plain one.
            PublicKeyOrCertificate::Certificate(cert) => {
                cert.public_key().fingerprint(HashAlg::Sha256)
            }
        }
        .to_string();
        let accepted = self
            .expected
            .as_deref()
            .is_none_or(|expected| expected.trim() == fingerprint);
        // Only the first key exchange sets it; rekeying presents the same key.
        let _ = self.presented.set(fingerprint);
        Ok(accepted)
    }
}

impl SshSession {
    /// Connects, checks the host key against `known_host_key`, and authenticates.
    ///
    /// A host key that differs from `known_host_key` (compared exactly, surrounding whitespace
    /// ignored) is [`SshError::HostKeyChanged`], and the connection is dropped before any
    /// credential is sent. With no `known_host_key` any key is accepted; store
    /// [`SshSession::host_key`] to pin it.
    ///
    /// Authentication tries the password method and, when the device rejects it but offers
    /// keyboard-interactive (as many network devices do), answers its password prompts with the
    /// same password. `connect_timeout` bounds the whole sequence.
    pub async fn connect(target: &SshTarget) -> Result<SshSession, SshError> {
        let addr = SocketAddr::new(target.host, target.port);
        let started = Instant::now();
        let deadline = started + target.connect_timeout;
        let limit = target.connect_timeout;

        let stream = match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(SshError::Timeout(format!(
                    "connecting to {addr} did not succeed within {limit:?}; check that the \
                     device is up and that no firewall drops SSH"
                )));
            }
            Ok(Err(e)) => return Err(tcp_error(addr, &e)),
            Ok(Ok(stream)) => stream,
        };
        // Without it, Nagle's algorithm delays every small request by a round trip or more.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%addr, error = %e, "could not disable Nagle's algorithm");
        }

        let presented = Arc::new(OnceLock::new());
        let handler = ClientHandler {
            expected: target.known_host_key.clone(),
            presented: Arc::clone(&presented),
        };
        let config = Arc::new(client_config(target.legacy_algorithms));
        let handshake = client::connect_stream(config, stream, handler);
        let handle = match timeout_at(deadline, handshake).await {
            Err(_) => {
                return Err(SshError::Timeout(format!(
                    "{addr} accepted the connection but did not complete the SSH handshake \
                     within {limit:?}; check that the port serves SSH and the device is not \
                     overloaded"
                )));
            }
            Ok(Err(e)) => {
                if let (Some(expected), Some(presented)) =
                    (target.known_host_key.as_deref(), presented.get())
                    && expected.trim() != presented
                {
                    tracing::warn!(%addr, expected, presented, "SSH host key changed");
                    return Err(SshError::HostKeyChanged {
                        expected: expected.to_owned(),
                        presented: presented.clone(),
                    });
                }
                return Err(handshake_error(addr, e, target.legacy_algorithms));
            }
            Ok(Ok(handle)) => handle,
        };
        let Some(host_key) = presented.get().cloned() else {
            return Err(SshError::Protocol(format!(
                "{addr} completed the handshake without presenting a host key"
            )));
        };

        let mut session = SshSession {
            handle,
            addr,
            host_key,
            exec_refused: false,
            shell: None,
            closed: None,
            phase: "",
        };
        match timeout_at(deadline, session.authenticate(target)).await {
            Err(_) => {
                session.abandon("authentication timed out").await;
                Err(SshError::Timeout(format!(
                    "{addr} did not finish authenticating within {limit:?}; the device may be \
                     slow to check credentials (RADIUS/TACACS)"
                )))
            }
            Ok(Err(e)) => {
                session.abandon("authentication failed").await;
                Err(e)
            }
            Ok(Ok(())) => {
                tracing::debug!(
                    %addr,
                    host_key = %session.host_key,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "SSH session established"
                );
                Ok(session)
            }
        }
    }

    /// The fingerprint the server presented ("SHA256:…"), to store on first use.
    pub fn host_key(&self) -> &str {
        &self.host_key
    }

    /// Runs one command and returns its output.
    ///
    /// The command runs on a new exec channel. Standard output and standard error are
    /// interleaved as received and capped at `max_output` bytes: the rest is discarded
    /// (`truncated` is set) but still read, so the command runs to its end. A non-zero exit
    /// status is not an error, the caller decides what it means; a channel that closes without
    /// an exit status (the command was cut short) is [`SshError::Protocol`].
    ///
    /// If the device refuses exec, this and every later command of the session run in one
    /// interactive shell instead: a PTY and a shell are requested, the prompt is learned from
    /// the last line of output (ending in `#`, `>` or `$`) once the device has been quiet for
    /// 300 ms, and each command is typed followed by `\n` and read up to the next prompt. The
    /// echoed command and the prompt are stripped, terminal escape sequences removed and line
    /// ends normalised to `\n`. There `exit_status` is `None` and `via_shell` is `true`, which
    /// counts as success.
    ///
    /// After `timeout` the call fails with [`SshError::Timeout`] and the session is
    /// disconnected, as that is the only way to abandon a running command. After a timeout or
    /// a lost connection every later call fails with [`SshError::Connect`]: open a new session.
    pub async fn run(
        &mut self,
        command: &str,
        timeout: Duration,
        max_output: usize,
    ) -> Result<CommandOutput, SshError> {
        if let Some(reason) = self.closed {
            return Err(SshError::Connect(format!(
                "the session to {} is closed ({reason}); open a new session",
                self.addr
            )));
        }
        let started = Instant::now();
        self.phase = "waiting for the command's output";
        let result = tokio::time::timeout(timeout, self.run_inner(command, max_output)).await;
        match result {
            Ok(result) => {
                if self.closed.is_none() && self.handle.is_closed() {
                    self.closed = Some("the connection was lost");
                }
                tracing::debug!(
                    addr = %self.addr,
                    command = %abbreviate(command),
                    ok = result.is_ok(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "ran command"
                );
                result
            }
            Err(_) => {
                let phase = self.phase;
                tracing::warn!(
                    addr = %self.addr,
                    command = %abbreviate(command),
                    ?timeout,
                    phase,
                    "command timed out; disconnecting"
                );
                self.abandon("a command timed out").await;
                Err(SshError::Timeout(format!(
                    "`{}` on {} did not finish within {timeout:?} ({phase}); the session was \
                     disconnected. Raise the timeout if the command is legitimately slow",
                    abbreviate(command),
                    self.addr
                )))
            }
        }
    }

    /// Politely disconnects.
    pub async fn close(mut self) {
        if self.closed.is_none() {
            self.abandon("closed by the caller").await;
        }
        // Waiting for the session task lets the disconnect message reach the device instead of
        // leaving it to notice a dead TCP connection.
        let _ = timeout(GOODBYE_TIMEOUT, &mut self.handle).await;
    }

    /// Signs in with the target's password, falling back to keyboard-interactive.
    async fn authenticate(&mut self, target: &SshTarget) -> Result<(), SshError> {
        let user = target.username.as_str();
        let Some(password) = target.password.as_deref() else {
            return match self.handle.authenticate_none(user).await {
                Ok(AuthResult::Success) => Ok(()),
                Ok(AuthResult::Failure {
                    remaining_methods, ..
                }) => Err(SshError::Auth(format!(
                    "{} requires a credential for user {user:?} (it offers {}) but none is \
                     stored",
                    self.addr,
                    method_names(&remaining_methods)
                ))),
                Err(e) => Err(self.lost("authentication", &e)),
            };
        };
        let remaining = match self.handle.authenticate_password(user, password).await {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(AuthResult::Failure {
                remaining_methods, ..
            }) => remaining_methods,
            Err(e) => return Err(self.lost("authentication", &e)),
        };
        if !remaining.contains(&MethodKind::KeyboardInteractive) {
            return Err(SshError::Auth(format!(
                "{} rejected the password for user {user:?} (it offers {})",
                self.addr,
                method_names(&remaining)
            )));
        }
        tracing::debug!(addr = %self.addr, "password rejected; trying keyboard-interactive");
        self.keyboard_interactive(user, password).await
    }

    /// Answers keyboard-interactive prompts: password prompts with the password, empty
    /// (informational) rounds with no answers.
    async fn keyboard_interactive(&mut self, user: &str, password: &str) -> Result<(), SshError> {
        let mut reply = self
            .handle
            .authenticate_keyboard_interactive_start(user, None::<String>)
            .await
            .map_err(|e| self.lost("authentication", &e))?;
        for _ in 0..MAX_KBD_ROUNDS {
            let prompts = match reply {
                KeyboardInteractiveAuthResponse::Success => return Ok(()),
                KeyboardInteractiveAuthResponse::Failure { .. } => {
                    return Err(SshError::Auth(format!(
                        "{} rejected the password for user {user:?} (tried password and \
                         keyboard-interactive)",
                        self.addr
                    )));
                }
                KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => prompts,
            };
            let mut answers = Vec::with_capacity(prompts.len());
            for prompt in &prompts {
                // Matches "Password:", "password:" and "Enter password for x:".
                if prompt.prompt.contains("assword") {
                    answers.push(password.to_owned());
                } else {
                    return Err(SshError::Auth(format!(
                        "{} asked {:?} during keyboard-interactive sign-in, which a stored \
                         password cannot answer",
                        self.addr,
                        prompt.prompt.trim()
                    )));
                }
            }
            reply = self
                .handle
                .authenticate_keyboard_interactive_respond(answers)
                .await
                .map_err(|e| self.lost("authentication", &e))?;
        }
        Err(SshError::Auth(format!(
            "{} kept asking keyboard-interactive questions after {MAX_KBD_ROUNDS} rounds",
            self.addr
        )))
    }

    async fn run_inner(
        &mut self,
        command: &str,
        max_output: usize,
    ) -> Result<CommandOutput, SshError> {
        if !self.exec_refused {
            match self.run_exec(command, max_output).await? {
                Some(output) => return Ok(output),
                None => {
                    tracing::info!(
                        addr = %self.addr,
                        "device refused exec; using an interactive shell from now on"
                    );
                    self.exec_refused = true;
                }
            }
        }
        self.run_in_shell(command, max_output).await
    }

    /// Runs `command` on an exec channel; `None` if the device refused the exec request.
    async fn run_exec(
        &mut self,
        command: &str,
        max_output: usize,
    ) -> Result<Option<CommandOutput>, SshError> {
        self.phase = "opening a channel";
        let mut channel = self.open_channel().await?;
        self.phase = "waiting for the command's output";
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.lost("sending the command", &e))?;

        let mut output = CappedBuffer::new(max_output);
        let mut accepted = false;
        let mut exit_status = None;
        let mut exit_signal = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Success => accepted = true,
                ChannelMsg::Failure if !accepted => {
                    // The channel stays open on the device until closed; a dropped channel
                    // would otherwise count against its session limit.
                    let _ = channel.close().await;
                    return Ok(None);
                }
                ChannelMsg::Data { data } => output.push(&data),
                ChannelMsg::ExtendedData { data, .. } => output.push(&data),
                ChannelMsg::ExitStatus {
                    exit_status: status,
                } => exit_status = Some(status),
                ChannelMsg::ExitSignal {
                    signal_name,
                    error_message,
                    ..
                } => exit_signal = Some(format!("{signal_name:?} {error_message}")),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        let Some(exit_status) = exit_status else {
            if self.handle.is_closed() {
                self.closed = Some("the connection was lost");
                return Err(SshError::Connect(format!(
                    "the connection to {} was lost while `{}` ran; its output is incomplete",
                    self.addr,
                    abbreviate(command)
                )));
            }
            let why = match exit_signal {
                Some(signal) => format!("was killed by signal {}", signal.trim()),
                None => "ended without reporting an exit status".to_owned(),
            };
            return Err(SshError::Protocol(format!(
                "`{}` on {} {why} after {} bytes of output; it may not have completed, run it \
                 again or check the device",
                abbreviate(command),
                self.addr,
                output.len()
            )));
        };
        let (output, truncated) = output.finish();
        Ok(Some(CommandOutput {
            output,
            exit_status: Some(exit_status),
            truncated,
            via_shell: false,
        }))
    }

    /// Runs `command` in the session's interactive shell, opening it first if needed.
    async fn run_in_shell(
        &mut self,
        command: &str,
        max_output: usize,
    ) -> Result<CommandOutput, SshError> {
        let mut shell = match self.shell.take() {
            Some(shell) => shell,
            None => self.open_shell().await?,
        };
        self.phase = "waiting for the prompt after the command";
        let result = self.shell_command(&mut shell, command, max_output).await;
        // A shell that closed mid-command is not reused; the next command opens a new one.
        if result.is_ok() {
            self.shell = Some(shell);
        }
        result
    }

    async fn shell_command(
        &mut self,
        shell: &mut Shell,
        command: &str,
        max_output: usize,
    ) -> Result<CommandOutput, SshError> {
        // Whatever arrived since the last prompt (log messages printed to the terminal) is not
        // part of this command's output.
        while let Ok(Some(msg)) = timeout(Duration::ZERO, shell.channel.wait()).await {
            if matches!(msg, ChannelMsg::Close | ChannelMsg::Eof) {
                return Err(self.shell_closed(command));
            }
        }
        shell
            .channel
            .data_bytes(format!("{command}\n"))
            .await
            .map_err(|e| self.lost("sending the command", &e))?;

        let limit = max_output
            .saturating_add(command.len())
            .saturating_add(shell.prompt.len())
            .saturating_add(SHELL_SLACK);
        let mut collected = CappedBuffer::new(limit);
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let msg = match timeout(SHELL_QUIET, shell.channel.wait()).await {
                Ok(msg) => msg,
                Err(_quiet) => {
                    // Prompts change ("router(config)#", a directory in a Unix prompt): a
                    // prompt-like last line followed by silence is taken as the new prompt.
                    if let Some(prompt) = detect_prompt(&terminal_text(&tail)) {
                        shell.prompt = prompt;
                        break;
                    }
                    continue;
                }
            };
            let data = match msg {
                Some(ChannelMsg::Data { data }) => data,
                Some(ChannelMsg::ExtendedData { data, .. }) => data,
                Some(ChannelMsg::Close | ChannelMsg::Eof) | None => {
                    return Err(self.shell_closed(command));
                }
                Some(_) => continue,
            };
            collected.push(&data);
            tail.extend_from_slice(&data);
            if tail.len() > PROMPT_TAIL {
                tail.drain(..tail.len() - PROMPT_TAIL);
            }
            if ends_with_prompt(&terminal_text(&tail), &shell.prompt) {
                break;
            }
        }

        let overflowed = collected.truncated();
        let (raw, _) = collected.finish();
        let text = terminal_text(raw.as_bytes());
        let mut lines: Vec<&str> = text.split('\n').collect();
        // The prompt is only in the buffer if nothing was discarded; the line break before it
        // belongs to the output.
        if !overflowed && let Some(prompt) = lines.last_mut() {
            *prompt = "";
        }
        // The echo is the first line with text (stale output was drained before sending); a
        // later line that happens to end like the command is output and stays.
        let echo = command.trim();
        if let Some(first) = lines.iter().position(|line| !line.trim().is_empty())
            && !echo.is_empty()
            && lines[first].trim_end().ends_with(echo)
        {
            lines.drain(..=first);
        }
        let text = lines.join("\n");
        let (output, cut) = cap_str(text, max_output);
        Ok(CommandOutput {
            output,
            exit_status: None,
            truncated: overflowed || cut,
            via_shell: true,
        })
    }

    /// Opens a PTY shell and learns its prompt.
    async fn open_shell(&mut self) -> Result<Shell, SshError> {
        self.phase = "opening an interactive shell";
        let mut channel = self.open_channel().await?;
        // Wide, so that long commands are echoed on one line rather than wrapped.
        channel
            .request_pty(true, "vt100", 511, 24, 0, 0, &[])
            .await
            .map_err(|e| self.lost("requesting a terminal", &e))?;
        channel
            .request_shell(true)
            .await
            .map_err(|e| self.lost("requesting a shell", &e))?;

        self.phase = "waiting for the shell prompt";
        let mut replies = 0;
        let mut seen: Vec<u8> = Vec::new();
        let mut nudged = false;
        loop {
            match timeout(SHELL_QUIET, channel.wait()).await {
                Ok(Some(ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. })) => {
                    seen.extend_from_slice(&data);
                    if seen.len() > PROMPT_TAIL {
                        seen.drain(..seen.len() - PROMPT_TAIL);
                    }
                }
                Ok(Some(ChannelMsg::Success)) => replies += 1,
                Ok(Some(ChannelMsg::Failure)) => {
                    // Replies come in request order: a refused PTY can still give a usable
                    // shell, a refused shell cannot.
                    replies += 1;
                    if replies >= 2 {
                        let _ = channel.close().await;
                        return Err(SshError::Protocol(format!(
                            "{} refuses both exec requests and interactive shells; commands \
                             cannot be run over SSH on it",
                            self.addr
                        )));
                    }
                    tracing::debug!(addr = %self.addr, "device refused a PTY; continuing");
                }
                Ok(Some(ChannelMsg::Close | ChannelMsg::Eof) | None) => {
                    return Err(SshError::Protocol(format!(
                        "{} closed the interactive shell before showing a prompt",
                        self.addr
                    )));
                }
                Ok(Some(_)) => {}
                Err(_quiet) => {
                    if let Some(prompt) = detect_prompt(&terminal_text(&seen)) {
                        tracing::debug!(addr = %self.addr, prompt, "learned shell prompt");
                        return Ok(Shell { channel, prompt });
                    }
                    // Some devices print the prompt only after a keystroke.
                    if !nudged {
                        nudged = true;
                        channel
                            .data_bytes(&b"\n"[..])
                            .await
                            .map_err(|e| self.lost("waking the shell", &e))?;
                    }
                }
            }
        }
    }

    async fn open_channel(&mut self) -> Result<russh::Channel<client::Msg>, SshError> {
        match self.handle.channel_open_session().await {
            Ok(channel) => Ok(channel),
            Err(russh::Error::ChannelOpenFailure(reason)) => Err(SshError::Protocol(format!(
                "{} refused to open a session channel ({reason:?}); it may limit concurrent \
                 sessions",
                self.addr
            ))),
            Err(e) => Err(self.lost("opening a channel", &e)),
        }
    }

    /// The error for a failure that means the connection is gone (or going).
    fn lost(&mut self, doing: &str, error: &russh::Error) -> SshError {
        self.closed = Some("the connection was lost");
        SshError::Connect(format!(
            "the connection to {} was lost while {doing} ({error}); reconnect and retry",
            self.addr
        ))
    }

    fn shell_closed(&mut self, command: &str) -> SshError {
        if self.handle.is_closed() {
            self.closed = Some("the connection was lost");
            return SshError::Connect(format!(
                "the connection to {} was lost while `{}` ran in its shell",
                self.addr,
                abbreviate(command)
            ));
        }
        SshError::Protocol(format!(
            "{} closed the interactive shell while `{}` ran; the next command opens a new one",
            self.addr,
            abbreviate(command)
        ))
    }

    /// Disconnects without waiting for anything the device still sends: the only way to stop
    /// a command that runs on.
    async fn abandon(&mut self, reason: &'static str) {
        self.closed = Some(reason);
        self.shell = None;
        let goodbye = self
            .handle
            .disconnect(Disconnect::ByApplication, reason, "en");
        if let Ok(Err(e)) = timeout(GOODBYE_TIMEOUT, goodbye).await {
            tracing::debug!(addr = %self.addr, error = %e, "disconnect after the session ended");
        }
    }
}

/// Client settings: no inactivity timeout (every step has its own deadline), Nagle off,
/// and legacy algorithms only when asked for.
fn client_config(legacy_algorithms: bool) -> client::Config {
    let mut preferred = russh::Preferred::default();
    if legacy_algorithms {
        // Appended, so that a device supporting modern algorithms still gets them.
        preferred.kex = Cow::Owned(with(&preferred.kex, kex::DH_G14_SHA1));
        preferred.cipher = Cow::Owned(with(&preferred.cipher, cipher::AES_128_CBC));
        preferred.mac = Cow::Owned(with(&preferred.mac, mac::HMAC_SHA1));
    }
    client::Config {
        preferred,
        nodelay: true,
        inactivity_timeout: None,
        ..client::Config::default()
    }
}

fn with<T: Copy + PartialEq>(list: &[T], extra: T) -> Vec<T> {
    let mut list = list.to_vec();
    if !list.contains(&extra) {
        list.push(extra);
    }
    list
}

fn tcp_error(addr: SocketAddr, error: &std::io::Error) -> SshError {
    SshError::Connect(match error.kind() {
        std::io::ErrorKind::ConnectionRefused => format!(
            "{addr} refused the connection; check that SSH is enabled on the device and that \
             the port is right"
        ),
        _ => format!(
            "cannot reach {addr} ({error}); check the address and the network path to the device"
        ),
    })
}

fn handshake_error(addr: SocketAddr, error: russh::Error, legacy: bool) -> SshError {
    match error {
        russh::Error::NoCommonAlgo { kind, theirs, .. } => {
            let kind = match kind {
                AlgorithmKind::Kex => "key-exchange",
                AlgorithmKind::Key => "host-key",
                AlgorithmKind::Cipher => "cipher",
                AlgorithmKind::Compression => "compression",
                AlgorithmKind::Mac => "MAC",
            };
            let hint = if legacy {
                "the device needs algorithms this client does not support"
            } else {
                "if the device is old, enable legacy algorithms for it"
            };
            SshError::Protocol(format!(
                "{addr} offers no {kind} algorithm this client accepts (it offers {}); {hint}",
                theirs.join(", ")
            ))
        }
        russh::Error::Version => SshError::Protocol(format!(
            "{addr} did not answer with an SSH greeting; check that the port serves SSH"
        )),
        russh::Error::IO(_)
        | russh::Error::Disconnect
        | russh::Error::HUP
        | russh::Error::SendError
        | russh::Error::RecvError => SshError::Connect(format!(
            "{addr} closed the connection during the SSH handshake ({error}); it may limit SSH \
             sessions or not accept connections from this address"
        )),
        other => SshError::Protocol(format!("the SSH handshake with {addr} failed: {other}")),
    }
}

fn method_names(methods: &[MethodKind]) -> String {
    if methods.is_empty() {
        return "no other method".to_owned();
    }
    methods
        .iter()
        .map(<&'static str>::from)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a terminal would show for `raw`: escape sequences (colours, bracketed-paste mode)
/// removed, lines ending in `\n`, and text after a bare `\r` written over the start of its line.
fn terminal_text(raw: &[u8]) -> String {
    let decoded = String::from_utf8_lossy(raw);
    let plain = strip_escapes(&decoded);
    let mut out = String::with_capacity(plain.len());
    for (i, line) in plain.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let line = line.trim_end_matches('\r');
        if !line.contains('\r') {
            out.push_str(line);
            continue;
        }
        let mut shown: Vec<char> = Vec::with_capacity(line.len());
        for segment in line.split('\r') {
            for (column, c) in segment.chars().enumerate() {
                match shown.get_mut(column) {
                    Some(slot) => *slot = c,
                    None => shown.push(c),
                }
            }
        }
        out.extend(shown);
    }
    out
}

/// `text` without ANSI/VT100 escape sequences.
fn strip_escapes(text: &str) -> Cow<'_, str> {
    if !text.contains('\x1b') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters, then one final byte in '@'..='~'.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC (window titles): up to BEL or ST ("ESC \\").
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' {
                        chars.next();
                        break;
                    }
                }
            }
            // Two-character sequences such as "ESC =" or "ESC 7".
            _ => {}
        }
    }
    Cow::Owned(out)
}

/// The last line of `text`, if it looks like a prompt.
fn detect_prompt(text: &str) -> Option<String> {
    let last = text.rsplit(['\n', '\r']).next()?.trim();
    let looks_like_prompt =
        !last.is_empty() && last.len() <= MAX_PROMPT_LEN && last.ends_with(['#', '>', '$']);
    looks_like_prompt.then(|| last.to_owned())
}

/// Whether `text` ends with the prompt, or with a variant of it that only adds a mode
/// ("router(config)#") or changes the terminator ("router>" after "router#").
fn ends_with_prompt(text: &str, prompt: &str) -> bool {
    let Some(last) = text.rsplit(['\n', '\r']).next().map(str::trim) else {
        return false;
    };
    if last == prompt {
        return true;
    }
    // The learned prompt ends in an ASCII terminator, so this slices at a char boundary.
    let base = &prompt[..prompt.len() - 1];
    !base.is_empty()
        && last.len() <= MAX_PROMPT_LEN
        && last.starts_with(base)
        && last.ends_with(['#', '>', '$'])
}

/// Commands in messages and logs are shortened: some are long configuration snippets.
fn abbreviate(command: &str) -> Cow<'_, str> {
    const MAX: usize = 80;
    match command.char_indices().nth(MAX) {
        Some((end, _)) => Cow::Owned(format!("{}…", &command[..end])),
        None => Cow::Borrowed(command),
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary; true if anything was cut.
fn cap_str(mut text: String, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

/// Bytes up to a cap; what exceeds it is counted as truncation and dropped.
struct CappedBuffer {
    bytes: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl CappedBuffer {
    fn new(cap: usize) -> Self {
        CappedBuffer {
            bytes: Vec::new(),
            cap,
            truncated: false,
        }
    }

    fn push(&mut self, data: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn truncated(&self) -> bool {
        self.truncated
    }

    /// The text, and whether anything was dropped.
    fn finish(self) -> (String, bool) {
        let mut bytes = self.bytes.as_slice();
        if self.truncated {
            // The cap may have split a multi-byte character; drop its first half rather than
            // show a replacement character.
            let partial = bytes
                .utf8_chunks()
                .last()
                .map_or(0, |chunk| chunk.invalid().len());
            bytes = &bytes[..bytes.len() - partial];
        }
        (String::from_utf8_lossy(bytes).into_owned(), self.truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_detection() {
        assert_eq!(
            detect_prompt("Welcome\r\n\r\nrouter#"),
            Some("router#".into())
        );
        assert_eq!(detect_prompt("banner\nsw1> "), Some("sw1>".into()));
        assert_eq!(detect_prompt("user@host:~$ "), Some("user@host:~$".into()));
        assert_eq!(detect_prompt("Welcome\r\n"), None);
        assert_eq!(detect_prompt("Press any key"), None);
    }

    #[test]
    fn prompt_variants_match() {
        assert!(ends_with_prompt("x\r\nrouter#", "router#"));
        assert!(ends_with_prompt("x\r\nrouter(config)# ", "router#"));
        assert!(ends_with_prompt("x\r\nrouter>", "router#"));
        assert!(!ends_with_prompt("show version\r\n", "router#"));
        assert!(!ends_with_prompt("x\r\nrouter#x", "router#"));
        assert!(!ends_with_prompt("x\r\n# comment >", "#"));
    }

    #[test]
    fn terminal_text_is_what_a_terminal_shows() {
        assert_eq!(
            terminal_text(b"\x1b[?2004l\rhello\r\n\x1b[01;32muser@host\x1b[00m:~$ "),
            "hello\nuser@host:~$ "
        );
        assert_eq!(terminal_text(b"a\r\r\nb\r\n"), "a\nb\n");
        assert_eq!(terminal_text(b"abcdef\rxy"), "xycdef");
        assert_eq!(terminal_text(b"\x1b]0;title\x07router#"), "router#");
    }

    #[test]
    fn capped_buffer_keeps_whole_characters() {
        let mut buf = CappedBuffer::new(4);
        buf.push("abé".as_bytes());
        buf.push("é".as_bytes());
        assert_eq!(buf.finish(), ("abé".to_owned(), true));

        let mut buf = CappedBuffer::new(3);
        buf.push("abé".as_bytes());
        assert_eq!(buf.finish(), ("ab".to_owned(), true));
    }

    #[test]
    fn cap_str_cuts_at_char_boundary() {
        assert_eq!(cap_str("héllo".into(), 2), ("h".into(), true));
        assert_eq!(cap_str("hello".into(), 5), ("hello".into(), false));
    }

    #[test]
    fn legacy_algorithms_are_opt_in() {
        let modern = client_config(false);
        assert!(!modern.preferred.kex.contains(&kex::DH_G14_SHA1));
        assert!(!modern.preferred.cipher.contains(&cipher::AES_128_CBC));
        assert!(!modern.preferred.mac.contains(&mac::HMAC_SHA1));
        let legacy = client_config(true);
        assert!(legacy.preferred.kex.contains(&kex::DH_G14_SHA1));
        assert!(legacy.preferred.cipher.contains(&cipher::AES_128_CBC));
        assert!(legacy.preferred.mac.contains(&mac::HMAC_SHA1));
        assert!(legacy.nodelay);
    }

    #[test]
    fn debug_hides_the_password() {
        let target = SshTarget {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 22,
            username: "admin".into(),
            password: Some("hunter2".into()),
            known_host_key: None,
            connect_timeout: Duration::from_secs(5),
            legacy_algorithms: false,
        };
        assert!(!format!("{target:?}").contains("hunter2"));
    }
}
