//! Connecting to a device: TCP, key exchange (legacy algorithms on request), the host key
//! check, and signing in by password or keyboard-interactive.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use russh::client::{self, AuthResult, KeyboardInteractiveAuthResponse};
use russh::{AlgorithmKind, MethodKind, cipher, kex, mac};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::*;

/// Bound on keyboard-interactive rounds, so a misbehaving server cannot keep us asking forever.
pub(super) const MAX_KBD_ROUNDS: usize = 8;

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

    /// Signs in with the target's password, falling back to keyboard-interactive.
    pub(super) async fn authenticate(&mut self, target: &SshTarget) -> Result<(), SshError> {
        let user = target.username.as_str();
        let Some(password) = target.password.as_ref().map(Secret::expose) else {
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
    pub(super) async fn keyboard_interactive(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<(), SshError> {
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
}

/// Client settings: no inactivity timeout (every step has its own deadline), Nagle off,
/// and legacy algorithms only when asked for.
pub(super) fn client_config(legacy_algorithms: bool) -> client::Config {
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

pub(super) fn with<T: Copy + PartialEq>(list: &[T], extra: T) -> Vec<T> {
    let mut list = list.to_vec();
    if !list.contains(&extra) {
        list.push(extra);
    }
    list
}

pub(super) fn tcp_error(addr: SocketAddr, error: &std::io::Error) -> SshError {
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

pub(super) fn handshake_error(addr: SocketAddr, error: russh::Error, legacy: bool) -> SshError {
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

pub(super) fn method_names(methods: &[MethodKind]) -> String {
    if methods.is_empty() {
        return "no other method".to_owned();
    }
    methods
        .iter()
        .map(<&'static str>::from)
        .collect::<Vec<_>>()
        .join(", ")
}
