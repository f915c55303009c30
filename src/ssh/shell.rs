//! Devices that refuse exec: one interactive shell per session, driven by prompt detection.

use std::borrow::Cow;
use std::time::Duration;

use russh::ChannelMsg;
use tokio::time::timeout;

use super::exec::{CappedBuffer, cap_str};
use super::*;

/// How long a fresh shell must stay silent before its last line is taken as the prompt:
/// banners and MOTDs arrive in bursts, and the prompt is whatever ends the last one.
pub(super) const SHELL_QUIET: Duration = Duration::from_millis(300);
/// A prompt longer than this is more likely a line of banner text than a prompt.
pub(super) const MAX_PROMPT_LEN: usize = 128;
/// Bytes of recent shell output kept for prompt matching once the output cap is reached.
pub(super) const PROMPT_TAIL: usize = 2048;
/// Beyond `max_output`, room for the echoed command, the prompt and stray carriage returns,
/// which are stripped before the cap is applied.
pub(super) const SHELL_SLACK: usize = 4096;

impl SshSession {
    /// Runs `command` in the session's interactive shell, opening it first if needed.
    pub(super) async fn run_in_shell(
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

    pub(super) async fn shell_command(
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
    pub(super) async fn open_shell(&mut self) -> Result<Shell, SshError> {
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
}

/// What a terminal would show for `raw`: escape sequences (colours, bracketed-paste mode)
/// removed, lines ending in `\n`, and text after a bare `\r` written over the start of its line.
pub(super) fn terminal_text(raw: &[u8]) -> String {
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
pub(super) fn strip_escapes(text: &str) -> Cow<'_, str> {
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
pub(super) fn detect_prompt(text: &str) -> Option<String> {
    let last = text.rsplit(['\n', '\r']).next()?.trim();
    let looks_like_prompt =
        !last.is_empty() && last.len() <= MAX_PROMPT_LEN && last.ends_with(['#', '>', '$']);
    looks_like_prompt.then(|| last.to_owned())
}

/// Whether `text` ends with the prompt, or with a variant of it that only adds a mode
/// ("router(config)#") or changes the terminator ("router>" after "router#").
pub(super) fn ends_with_prompt(text: &str, prompt: &str) -> bool {
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
