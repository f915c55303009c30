//! SSH sessions to network devices: connect, check the host key, sign in, run commands.
//!
//! One [`SshSession`] per device, reused for several commands (a new channel on an open
//! session costs well under a millisecond; a new connection costs a key exchange). Commands
//! run on exec channels; devices that refuse exec get one interactive shell instead, driven by
//! prompt detection.
//!
//! `connect.rs` opens the session (TCP, key exchange, host key, sign-in), `exec.rs` runs
//! commands on exec channels, `shell.rs` drives the interactive shell; this module holds
//! the session and `run`, which picks between the two.

mod connect;
mod exec;
mod shell;

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use russh::Disconnect;
use russh::client;
use russh::keys::{HashAlg, PublicKeyOrCertificate};
use tokio::time::{Instant, timeout};

pub use crate::crypto::Secret;

/// Upper bound for the polite goodbye, so closing never hangs on a dead connection.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where and how to sign in. Its `Debug` shows no password (see [`Secret`]).
#[derive(Clone, Debug)]
pub struct SshTarget {
    /// The device's management address.
    pub host: IpAddr,
    /// The SSH port, usually 22.
    pub port: u16,
    /// The user to sign in as.
    pub username: String,
    /// The password, also used to answer keyboard-interactive password prompts; `None` tries
    /// the "none" method, which only lab devices accept.
    pub password: Option<Secret>,
    /// Fingerprint ("SHA256:…") accepted earlier (trust on first use); None = first contact.
    pub known_host_key: Option<String>,
    /// Limit for reaching the device, the SSH handshake and authentication together.
    pub connect_timeout: Duration,
    /// Also offer diffie-hellman-group14-sha1 / aes128-cbc / hmac-sha1 for old devices.
    pub legacy_algorithms: bool,
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

/// Commands in messages and logs are shortened: some are long configuration snippets.
fn abbreviate(command: &str) -> Cow<'_, str> {
    const MAX: usize = 80;
    match command.char_indices().nth(MAX) {
        Some((end, _)) => Cow::Owned(format!("{}…", &command[..end])),
        None => Cow::Borrowed(command),
    }
}

#[cfg(test)]
mod tests {
    use super::connect::*;
    use super::exec::*;
    use super::shell::*;
    use super::*;
    use russh::{cipher, kex, mac};

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
            password: Some(Secret::new("hunter2")),
            known_host_key: None,
            connect_timeout: Duration::from_secs(5),
            legacy_algorithms: false,
        };
        assert!(!format!("{target:?}").contains("hunter2"));
    }
}
