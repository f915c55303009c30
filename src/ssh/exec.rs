//! Commands on exec channels: output capped and still read to the end, the exit status.

use russh::ChannelMsg;

use super::*;

impl SshSession {
    /// Runs `command` on an exec channel; `None` if the device refused the exec request.
    pub(super) async fn run_exec(
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
}

/// Cuts `text` to at most `max` bytes at a character boundary; true if anything was cut.
pub(super) fn cap_str(mut text: String, max: usize) -> (String, bool) {
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
pub(super) struct CappedBuffer {
    bytes: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl CappedBuffer {
    pub(super) fn new(cap: usize) -> Self {
        CappedBuffer {
            bytes: Vec::new(),
            cap,
            truncated: false,
        }
    }

    pub(super) fn push(&mut self, data: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }

    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(super) fn truncated(&self) -> bool {
        self.truncated
    }

    /// The text, and whether anything was dropped.
    pub(super) fn finish(self) -> (String, bool) {
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
