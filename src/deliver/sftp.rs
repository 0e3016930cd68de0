//! `to = "sftp"`: a directory on an SFTP server, over one SSH session per destination.
//!
//! Each part is written to `.NAME.exportd-tmp` in its target directory and renamed into
//! place (`posix-rename@openssh.com` when the server has it, which replaces atomically), so a
//! reader never sees half a file. Missing directories are created on the way. Writes are
//! pipelined: many large write requests are in flight at once, which is what makes SFTP fast.
//!
//! The session is kept between parts and re-opened after any connection-level failure (reset,
//! timeout, closed channel); the pipeline's retry then repeats the part on the new session.
//! The server's identity is checked against known_hosts or a pinned fingerprint before
//! anything is sent (see [`super::known_hosts`]).

use super::known_hosts::HostKeyPolicy;
use super::{Context, Delivered, Destination, Error, ObjectInfo, Upload};
use crate::config::daemon::{ConnectionConfig, SftpConnection};
use crate::config::secret::Secret;
use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Default limit of each step.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes per write request: OpenSSH's sftp-server accepts up to 255 KiB (its `limits`
/// extension says so), and fewer, larger requests cost less per byte.
const WRITE_LEN: usize = 255 * 1024;
/// Write requests in flight at once (about 16 MB): enough to keep a long link busy.
const WRITES_IN_FLIGHT: usize = 64;
/// Largest object `read_small` reads (manifests are far smaller).
const SMALL_LIMIT: u64 = 64 << 20;

/// The SFTP destination.
pub struct SftpDestination {
    settings: Arc<Settings>,
    session: tokio::sync::Mutex<Option<Session>>,
}

/// What connecting needs, resolved once when the destination is built.
struct Settings {
    host: String,
    port: u16,
    username: String,
    key: Option<Arc<PrivateKey>>,
    password: Option<Secret>,
    /// `None` only for `allow_insecure` on loopback.
    host_keys: Option<HostKeyPolicy>,
    timeout: Duration,
}

/// One logged-in SSH connection with its SFTP channel.
struct Session {
    ssh: client::Handle<HostKeyCheck>,
    sftp: RawSftpSession,
    posix_rename: bool,
    fsync: bool,
    write_len: usize,
}

/// Why an operation failed, before it becomes a [`Error::Remote`].
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// The server's key was refused; the message names the key and how to trust it.
    #[error("{0}")]
    HostKey(String),
    /// The server refused the login.
    #[error("{0}")]
    Auth(String),
    /// TCP or SSH level trouble: the session is gone.
    #[error("{0}")]
    Connection(String, bool),
    /// A step took longer than the timeout; the session is presumed stuck.
    #[error(
        "{0}; the server or the network is too slow or stuck (raise `timeout_seconds` if it is only slow)"
    )]
    Timeout(String),
    /// The SFTP server answered an operation with an error status.
    #[error("{message}")]
    Status { message: String, retriable: bool },
}

impl Failure {
    fn retriable(&self) -> bool {
        match self {
            Failure::HostKey(_) | Failure::Auth(_) => false,
            Failure::Connection(_, retriable) => *retriable,
            Failure::Timeout(_) => true,
            Failure::Status { retriable, .. } => *retriable,
        }
    }

    /// Whether the session can still be used after this failure.
    fn keeps_session(&self) -> bool {
        matches!(self, Failure::Status { .. })
    }
}

/// What the SSH handler reports: the library's errors, or our refusal of the host key.
#[derive(Debug, thiserror::Error)]
enum SshError {
    #[error(transparent)]
    Ssh(#[from] russh::Error),
    #[error("{0}")]
    HostKey(String),
}

/// Checks the server's key during the key exchange, before the login is sent.
struct HostKeyCheck {
    settings: Arc<Settings>,
}

impl client::Handler for HostKeyCheck {
    type Error = SshError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, SshError> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_key else {
            return Err(SshError::HostKey(format!(
                "the server {}:{} presented a host certificate; exportd checks plain host keys only: list the server's key in known_hosts",
                self.settings.host, self.settings.port
            )));
        };
        match &self.settings.host_keys {
            Some(policy) => policy
                .check(key, &self.settings.host, self.settings.port)
                .map(|()| true)
                .map_err(SshError::HostKey),
            None => Ok(true),
        }
    }
}

impl SftpDestination {
    /// Resolves the connection's secrets and checks its settings; connects on first use.
    pub fn new(connection_name: &str, context: &Context) -> Result<SftpDestination, Error> {
        let config = match context.connection(connection_name)? {
            ConnectionConfig::Sftp(c) => c,
            other => {
                return Err(Error::Config(format!(
                    "connection `{connection_name}` is of type `{}`; `to = \"sftp\"` needs an `sftp` connection",
                    other.kind_name()
                )));
            }
        };
        Ok(SftpDestination {
            settings: Arc::new(Settings::from_config(connection_name, config)?),
            session: tokio::sync::Mutex::new(None),
        })
    }

    /// Runs `operation` on the session, connecting first if there is none or it closed.
    /// A connection-level failure drops the session so the next call reconnects.
    async fn with_session<T>(
        &self,
        operation: impl AsyncFnOnce(&Session) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|s| s.ssh.is_closed()) {
            tracing::info!(
                "sftp {}:{}: the connection was closed; reconnecting",
                self.settings.host,
                self.settings.port
            );
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(connect(&self.settings).await?);
        }
        let session = slot.as_ref().expect("connected above");
        let result = operation(session).await;
        if let Err(failure) = &result
            && !failure.keeps_session()
        {
            *slot = None;
        }
        result
    }

    fn remote_error(&self, key: &str, failure: Failure) -> Error {
        let message = match &failure {
            // It names the server already.
            Failure::HostKey(message) => message.clone(),
            other => format!(
                "{other} (server {}:{} as {})",
                self.settings.host, self.settings.port, self.settings.username
            ),
        };
        Error::Remote {
            destination: "sftp",
            key: key.to_owned(),
            retriable: failure.retriable(),
            message,
        }
    }

    async fn put_async(&self, upload: &Upload<'_>) -> Result<(), Failure> {
        let target = remote_path(upload.key);
        let (dir, name) = split_path(&target);
        let temp = join(dir, &format!(".{name}.exportd-tmp"));
        self.with_session(async |session: &Session| {
            session.create_dirs(dir).await?;
            let written = async {
                session.write_file(upload.file, &temp).await?;
                session.replace(&temp, &target).await
            }
            .await;
            // Only on a session that still works (a stuck one would wait out another
            // timeout); a leftover temp file is truncated by the next attempt anyway.
            if let Err(failure) = &written
                && failure.keeps_session()
            {
                let _ = session.sftp.remove(temp.as_str()).await;
            }
            written
        })
        .await
    }
}

impl Settings {
    fn from_config(name: &str, config: &SftpConnection) -> Result<Settings, Error> {
        if let Some(problem) = config.host_key_problem() {
            return Err(Error::Config(format!("connection `{name}`: {problem}")));
        }
        let key = match &config.private_key {
            Some(reference) => {
                let text = reference.resolve()?;
                let passphrase = config
                    .private_key_passphrase
                    .as_ref()
                    .map(|p| p.resolve())
                    .transpose()?;
                let key = russh::keys::decode_secret_key(
                    text.expose(),
                    passphrase.as_ref().map(|p| p.expose()),
                )
                .map_err(|e| {
                    Error::Config(format!(
                        "connection `{name}`: the private_key ({reference}) cannot be read ({e}): it must be an OpenSSH private key (`ssh-keygen -t ed25519 -f FILE` writes one), with `private_key_passphrase` if it is encrypted"
                    ))
                })?;
                Some(Arc::new(key))
            }
            None => None,
        };
        let password = config.password.as_ref().map(|p| p.resolve()).transpose()?;
        if key.is_none() && password.is_none() {
            return Err(Error::Config(format!(
                "connection `{name}` has no way to log in: set `private_key = {{ file = \"/path/key\" }}` (preferred) or `password`"
            )));
        }
        let host_keys = (config.known_hosts.is_some() || config.host_key_fingerprint.is_some())
            .then(|| HostKeyPolicy {
                known_hosts: config.known_hosts.clone(),
                fingerprint: config.host_key_fingerprint.clone(),
                connection: name.to_owned(),
            });
        if host_keys.is_none() {
            tracing::warn!(
                "sftp connection `{name}`: allow_insecure = true, the server's host key is not checked"
            );
        }
        Ok(Settings {
            host: config.host.clone(),
            port: config.port,
            username: config.username.clone(),
            key,
            password,
            host_keys,
            timeout: config
                .timeout_seconds
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_TIMEOUT),
        })
    }
}

/// Limits `future` to the configured timeout.
async fn within<T>(
    settings: &Settings,
    step: &'static str,
    future: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout(settings.timeout, future)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Timeout(format!(
                "{step} did not finish within {} s",
                settings.timeout.as_secs()
            )))
        })
}

/// Opens the TCP connection, checks the host key, logs in and starts the SFTP subsystem.
async fn connect(settings: &Arc<Settings>) -> Result<Session, Failure> {
    let config = Arc::new(client::Config {
        // Dead peers are noticed between parts instead of at the next write.
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        window_size: 16 << 20,
        nodelay: true,
        preferred: preferred_algorithms(settings),
        ..client::Config::default()
    });
    let handler = HostKeyCheck {
        settings: settings.clone(),
    };
    let address = (settings.host.as_str(), settings.port);
    let mut ssh = within(settings, "connecting", async {
        client::connect(config, address, handler)
            .await
            .map_err(|e| match e {
                SshError::HostKey(message) => Failure::HostKey(message),
                SshError::Ssh(e) => connection_failure(&e, "cannot connect"),
            })
    })
    .await?;
    within(settings, "logging in", login(settings, &mut ssh)).await?;
    let sftp = within(settings, "starting SFTP", async {
        let channel = ssh
            .channel_open_session()
            .await
            .map_err(|e| connection_failure(&e, "cannot open a channel"))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| connection_failure(&e, "cannot start the sftp subsystem"))?;
        Ok(channel)
    })
    .await?;
    let sftp = RawSftpSession::new_with_config(
        sftp.into_stream(),
        russh_sftp::client::Config {
            request_timeout_secs: settings.timeout.as_secs().max(1),
            ..russh_sftp::client::Config::default()
        },
    );
    let version = within(settings, "starting SFTP", async {
        sftp.init().await.map_err(|e| {
            Failure::Connection(
                format!(
                    "the server accepted the login but did not start SFTP ({e}); check that its sshd has `Subsystem sftp` enabled for this user"
                ),
                false,
            )
        })
    })
    .await?;
    let has = |name: &str| version.extensions.get(name).is_some_and(|v| v == "1");
    let mut write_len = WRITE_LEN;
    if has(russh_sftp::extensions::LIMITS)
        && let Ok(limits) = sftp.limits().await
        && limits.max_write_len > 0
    {
        write_len = write_len.min(limits.max_write_len as usize);
    }
    Ok(Session {
        posix_rename: has("posix-rename@openssh.com"),
        fsync: has(russh_sftp::extensions::FSYNC),
        ssh,
        sftp,
        write_len,
    })
}

/// Host key algorithms: those known_hosts records for the server first, so the server shows
/// a key we can check (as OpenSSH does), then the library's defaults; AES-GCM first.
fn preferred_algorithms(settings: &Settings) -> russh::Preferred {
    let mut preferred = russh::Preferred::default();
    // AES-GCM runs on the CPU's AES instructions: about 15 % faster than the library's first
    // choice, ChaCha20-Poly1305, in scripts/bench-sftp.sh. Both are OpenSSH defaults.
    preferred.cipher = first_then_rest(&[russh::cipher::AES_256_GCM], &preferred.cipher).into();
    if let Some(policy) = &settings.host_keys {
        let known = policy.known_algorithms(&settings.host, settings.port);
        let checkable: Vec<_> = preferred
            .key
            .iter()
            .filter(|a| known.iter().any(|k| same_key_type(k, a)))
            .cloned()
            .collect();
        preferred.key = first_then_rest(&checkable, &preferred.key).into();
    }
    preferred
}

/// `first`, then the items of `rest` not in it.
fn first_then_rest<T: Clone + PartialEq>(first: &[T], rest: &[T]) -> Vec<T> {
    let mut all = first.to_vec();
    all.extend(rest.iter().filter(|item| !first.contains(item)).cloned());
    all
}

/// A known_hosts `ssh-rsa` key serves the `rsa-sha2-*` signature algorithms too.
fn same_key_type(a: &russh::keys::Algorithm, b: &russh::keys::Algorithm) -> bool {
    a == b || (a.clone().is_rsa() && b.clone().is_rsa())
}

/// Key first (the server may then ask for the password too, or instead).
async fn login(settings: &Settings, ssh: &mut client::Handle<HostKeyCheck>) -> Result<(), Failure> {
    let user = settings.username.as_str();
    let auth_error = |e: russh::Error| connection_failure(&e, "login failed");
    let mut tried = Vec::new();
    if let Some(key) = &settings.key {
        let hash = if key.algorithm().is_rsa() {
            ssh.best_supported_rsa_hash()
                .await
                .map_err(auth_error)?
                .flatten()
        } else {
            None
        };
        let result = ssh
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.clone(), hash))
            .await
            .map_err(auth_error)?;
        if result.success() {
            return Ok(());
        }
        tried.push("the private key");
    }
    if let Some(password) = &settings.password {
        let result = ssh
            .authenticate_password(user, password.expose())
            .await
            .map_err(auth_error)?;
        if result.success() {
            return Ok(());
        }
        tried.push("the password");
    }
    Err(Failure::Auth(format!(
        "the server refused the login as `{user}` with {}: check that the public key is in that user's authorized_keys on the server (or the password), then run again",
        tried.join(" and ")
    )))
}

/// Classifies a transport error: refused, reset and timed-out connections may heal.
fn connection_failure(error: &russh::Error, what: &str) -> Failure {
    use std::io::ErrorKind;
    let retriable = match error {
        russh::Error::IO(io) => !matches!(
            io.kind(),
            ErrorKind::PermissionDenied | ErrorKind::InvalidInput | ErrorKind::Unsupported
        ),
        russh::Error::NoCommonAlgo { .. }
        | russh::Error::UnknownAlgo
        | russh::Error::Version
        | russh::Error::Keys(_)
        | russh::Error::InvalidConfig(_)
        | russh::Error::UnsupportedAuthMethod
        | russh::Error::NoAuthMethod => false,
        _ => true,
    };
    let hint = match error {
        russh::Error::IO(io) if io.kind() == ErrorKind::ConnectionRefused => {
            ": nothing listens there; check `host` and `port` and that the server is up"
        }
        russh::Error::NoCommonAlgo { .. } => ": the server and exportd share no algorithm",
        _ => "",
    };
    Failure::Connection(format!("{what}: {error}{hint}"), retriable)
}

/// Classifies an SFTP error. Status codes are the server's word on one operation (the
/// session is fine); anything else means the channel is gone or stuck.
fn sftp_failure(error: SftpError, what: &str, path: &str) -> Failure {
    match error {
        SftpError::Status(status) => {
            let (retriable, hint) = match status.status_code {
                StatusCode::PermissionDenied => (
                    false,
                    ": the login user may not write there; fix the directory's permissions or the path",
                ),
                StatusCode::NoSuchFile => (false, ""),
                StatusCode::OpUnsupported => (false, ": the server does not support this"),
                StatusCode::NoConnection | StatusCode::ConnectionLost => (true, ""),
                // Failure covers a full disk or a quota, which can clear up.
                _ => (true, ""),
            };
            let detail = if status.error_message.is_empty() {
                status.status_code.to_string()
            } else {
                status.error_message.clone()
            };
            Failure::Status {
                message: format!("{what} `{path}`: {detail}{hint}"),
                retriable,
            }
        }
        SftpError::Timeout => Failure::Timeout(format!("{what} `{path}`: no answer in time")),
        other => Failure::Connection(format!("{what} `{path}`: {other}"), true),
    }
}

fn is_status(error: &SftpError, code: StatusCode) -> bool {
    matches!(error, SftpError::Status(s) if s.status_code == code)
}

impl Session {
    /// `mkdir -p`: the server has no such call, so each missing ancestor is made in turn
    /// (from the deepest existing one down).
    async fn create_dirs(&self, dir: &str) -> Result<(), Failure> {
        if dir.is_empty() || dir == "/" || self.is_dir(dir).await? {
            return Ok(());
        }
        let mut missing = vec![dir.to_owned()];
        let mut current = dir;
        while let Some((parent, _)) = current.rsplit_once('/') {
            if parent.is_empty() || self.is_dir(parent).await? {
                break;
            }
            missing.push(parent.to_owned());
            current = parent;
        }
        for path in missing.iter().rev() {
            if let Err(e) = self
                .sftp
                .mkdir(path.as_str(), FileAttributes::empty())
                .await
            {
                // Another writer may have made it meanwhile.
                if !self.is_dir(path).await? {
                    return Err(sftp_failure(e, "cannot create directory", path));
                }
            }
        }
        Ok(())
    }

    async fn is_dir(&self, path: &str) -> Result<bool, Failure> {
        match self.sftp.stat(path).await {
            Ok(attrs) => Ok(attrs.attrs.is_dir()),
            Err(e) if is_status(&e, StatusCode::NoSuchFile) => Ok(false),
            Err(e) => Err(sftp_failure(e, "cannot look at", path)),
        }
    }

    /// Copies the staged file to `remote` with many writes in flight, then flushes it to the
    /// server's disk when the server offers `fsync@openssh.com`.
    async fn write_file(&self, local: &std::path::Path, remote: &str) -> Result<(), Failure> {
        use futures::stream::{FuturesUnordered, StreamExt};
        let mut file = tokio::fs::File::open(local).await.map_err(|e| {
            Failure::Connection(
                format!("cannot read the staged file {}: {e}", local.display()),
                false,
            )
        })?;
        let handle = self
            .sftp
            .open(
                remote,
                OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE,
                FileAttributes::empty(),
            )
            .await
            .map_err(|e| sftp_failure(e, "cannot create", remote))?
            .handle;
        let mut in_flight = FuturesUnordered::new();
        let mut offset = 0u64;
        let result = async {
            loop {
                let mut chunk = vec![0; self.write_len];
                let filled = read_full(&mut file, &mut chunk).await.map_err(|e| {
                    Failure::Connection(
                        format!("cannot read the staged file {}: {e}", local.display()),
                        false,
                    )
                })?;
                if filled == 0 {
                    break;
                }
                chunk.truncate(filled);
                in_flight.push(self.sftp.write(handle.as_str(), offset, chunk));
                offset += filled as u64;
                if in_flight.len() >= WRITES_IN_FLIGHT
                    && let Some(done) = in_flight.next().await
                {
                    done.map_err(|e| sftp_failure(e, "cannot write", remote))?;
                }
            }
            while let Some(done) = in_flight.next().await {
                done.map_err(|e| sftp_failure(e, "cannot write", remote))?;
            }
            if self.fsync {
                self.sftp
                    .fsync(handle.as_str())
                    .await
                    .map_err(|e| sftp_failure(e, "cannot write", remote))?;
            }
            Ok(())
        }
        .await;
        drop(in_flight);
        let closed = self
            .sftp
            .close(handle.as_str())
            .await
            .map(|_| ())
            .map_err(|e| sftp_failure(e, "cannot write", remote));
        result.and(closed)
    }

    /// Moves `temp` over `target`. Plain SFTP rename refuses to overwrite, so without the
    /// posix-rename extension the old target is removed first (a reader may then briefly see
    /// no file, but never half of one).
    async fn replace(&self, temp: &str, target: &str) -> Result<(), Failure> {
        if self.posix_rename {
            return self
                .sftp
                .extended("posix-rename@openssh.com", two_strings(temp, target))
                .await
                .and_then(|reply| match reply {
                    russh_sftp::protocol::Packet::Status(s) if s.status_code == StatusCode::Ok => {
                        Ok(())
                    }
                    russh_sftp::protocol::Packet::Status(s) => Err(SftpError::Status(s)),
                    _ => Err(SftpError::UnexpectedPacket),
                })
                .map_err(|e| sftp_failure(e, "cannot rename", target));
        }
        if self.sftp.rename(temp, target).await.is_ok() {
            return Ok(());
        }
        match self.sftp.remove(target).await {
            Err(e) if !is_status(&e, StatusCode::NoSuchFile) => {
                return Err(sftp_failure(e, "cannot replace", target));
            }
            _ => {}
        }
        self.sftp
            .rename(temp, target)
            .await
            .map(|_| ())
            .map_err(|e| sftp_failure(e, "cannot rename", target))
    }

    async fn read_small(&self, path: &str) -> Result<Option<Vec<u8>>, Failure> {
        let size = match self.sftp.stat(path).await {
            Ok(attrs) => attrs.attrs.size.unwrap_or(0),
            Err(e) if is_status(&e, StatusCode::NoSuchFile) => return Ok(None),
            Err(e) => return Err(sftp_failure(e, "cannot look at", path)),
        };
        if size > SMALL_LIMIT {
            return Ok(None);
        }
        let handle = self
            .sftp
            .open(path, OpenFlags::READ, FileAttributes::empty())
            .await
            .map_err(|e| sftp_failure(e, "cannot open", path))?
            .handle;
        let mut bytes = Vec::with_capacity(size as usize);
        let result = loop {
            match self
                .sftp
                .read(handle.as_str(), bytes.len() as u64, 64 * 1024)
                .await
            {
                Ok(data) if !data.data.is_empty() && bytes.len() as u64 <= SMALL_LIMIT => {
                    bytes.extend_from_slice(&data.data)
                }
                Ok(_) => break Ok(()),
                Err(e) if is_status(&e, StatusCode::Eof) => break Ok(()),
                Err(e) => break Err(sftp_failure(e, "cannot read", path)),
            }
        };
        let _ = self.sftp.close(handle.as_str()).await;
        result.map(|()| Some(bytes))
    }
}

/// Fills `buffer` unless the file ends first; the number of bytes read.
async fn read_full(file: &mut tokio::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The body of an extended request taking two paths: two SSH strings.
fn two_strings(first: &str, second: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(8 + first.len() + second.len());
    for text in [first, second] {
        data.extend_from_slice(&(text.len() as u32).to_be_bytes());
        data.extend_from_slice(text.as_bytes());
    }
    data
}

/// The remote path of a rendered key: `/`-separated, relative to the login directory unless
/// absolute. The pipeline has already confined it (no `..`).
fn remote_path(key: &str) -> String {
    let mut path = String::new();
    if key.starts_with('/') {
        path.push('/');
    }
    let parts: Vec<&str> = key
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    path.push_str(&parts.join("/"));
    path
}

/// Directory and file name; the directory is empty for a bare name.
fn split_path(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

fn join(dir: &str, name: &str) -> String {
    match dir {
        "" => name.to_owned(),
        "/" => format!("/{name}"),
        _ => format!("{dir}/{name}"),
    }
}

impl Destination for SftpDestination {
    fn kind(&self) -> &'static str {
        "sftp"
    }

    fn put(&self, upload: &Upload<'_>) -> Result<Delivered, Error> {
        crate::template::confine(upload.key, true)?;
        let started = std::time::Instant::now();
        super::block_on(self.put_async(upload)).map_err(|f| self.remote_error(upload.key, f))?;
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            "sftp: put {} ({} bytes) in {seconds:.2} s, {:.1} MB/s",
            remote_path(upload.key),
            upload.bytes,
            upload.bytes as f64 / 1e6 / seconds.max(1e-9)
        );
        Ok(Delivered {
            destination: self.kind().to_owned(),
            key: remote_path(upload.key),
            bytes: upload.bytes,
            sha256: upload.sha256.to_owned(),
            delivered_at: chrono::Utc::now(),
        })
    }

    fn read_small(&self, key: &str) -> Option<Vec<u8>> {
        let path = remote_path(key);
        let result = super::block_on(
            self.with_session(async |session: &Session| session.read_small(&path).await),
        );
        match result {
            Ok(bytes) => bytes,
            Err(failure) => {
                tracing::warn!("sftp: cannot read `{path}`: {failure}");
                None
            }
        }
    }

    fn remove(&self, key: &str) -> Result<(), Error> {
        let path = remote_path(key);
        super::block_on(self.with_session(async |session: &Session| {
            match session.sftp.remove(path.as_str()).await {
                Err(e) if !is_status(&e, StatusCode::NoSuchFile) => {
                    Err(sftp_failure(e, "cannot remove", &path))
                }
                _ => Ok(()),
            }
        }))
        .map_err(|f| self.remote_error(key, f))
    }

    fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, Error> {
        let path = remote_path(key);
        super::block_on(self.with_session(async |session: &Session| {
            match session.sftp.stat(path.as_str()).await {
                Ok(attrs) => Ok(Some(ObjectInfo {
                    bytes: attrs.attrs.size.unwrap_or(0),
                    etag: None,
                    modified: attrs
                        .attrs
                        .mtime
                        .and_then(|t| chrono::DateTime::from_timestamp(i64::from(t), 0)),
                })),
                Err(e) if is_status(&e, StatusCode::NoSuchFile) => Ok(None),
                Err(e) => Err(sftp_failure(e, "cannot look at", &path)),
            }
        }))
        .map_err(|f| self.remote_error(key, f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_relative_unless_absolute() {
        assert_eq!(remote_path("a//b/./c.csv"), "a/b/c.csv");
        assert_eq!(remote_path("/srv/in/c.csv"), "/srv/in/c.csv");
        assert_eq!(split_path("a/b/c.csv"), ("a/b", "c.csv"));
        assert_eq!(split_path("c.csv"), ("", "c.csv"));
        assert_eq!(split_path("/c.csv"), ("/", "c.csv"));
        assert_eq!(join("", ".c.exportd-tmp"), ".c.exportd-tmp");
        assert_eq!(join("/", "c"), "/c");
        assert_eq!(join("a/b", "c"), "a/b/c");
    }

    #[test]
    fn the_server_is_asked_for_a_key_type_known_hosts_records_and_aes_gcm() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            "[sftp.example.com]:2222 ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBAgIeo16mnJSHgzV5ap5lQtNX0CRB1Wb9agT4zYMRC5Oa2zMl9qk1UIP+SZoYOTEN9uSEIsRGgvTiACUl+VMQEw=\n",
        )
        .unwrap();
        let settings = |port| Settings {
            host: "sftp.example.com".into(),
            port,
            username: "u".into(),
            key: None,
            password: None,
            host_keys: Some(HostKeyPolicy {
                known_hosts: Some(path.clone()),
                fingerprint: None,
                connection: "files".into(),
            }),
            timeout: DEFAULT_TIMEOUT,
        };
        let defaults = russh::Preferred::default();
        let known = preferred_algorithms(&settings(2222));
        assert_eq!(known.key[0].as_str(), "ecdsa-sha2-nistp256");
        assert_eq!(known.key.len(), defaults.key.len());
        assert_eq!(known.cipher[0], russh::cipher::AES_256_GCM);
        assert_eq!(known.cipher.len(), defaults.cipher.len());
        // Nothing recorded for another port: the library's order stands.
        assert_eq!(preferred_algorithms(&settings(22)).key, defaults.key);
    }

    #[test]
    fn extended_request_bodies_are_ssh_strings() {
        assert_eq!(two_strings("ab", "c"), b"\0\0\0\x02ab\0\0\0\x01c");
    }

    #[test]
    fn refused_and_reset_connections_are_retried_but_not_bad_algorithms() {
        let io = |kind| russh::Error::IO(std::io::Error::from(kind));
        assert!(connection_failure(&io(std::io::ErrorKind::ConnectionRefused), "x").retriable());
        assert!(connection_failure(&io(std::io::ErrorKind::ConnectionReset), "x").retriable());
        assert!(connection_failure(&russh::Error::HUP, "x").retriable());
        assert!(!connection_failure(&russh::Error::UnknownAlgo, "x").retriable());
        assert!(!Failure::HostKey("k".into()).retriable());
        assert!(!Failure::Auth("a".into()).retriable());
        assert!(Failure::Timeout("a write".into()).retriable());
    }

    #[test]
    fn permission_denied_is_permanent_and_keeps_the_session() {
        let status = |code| {
            SftpError::Status(russh_sftp::protocol::Status {
                id: 1,
                status_code: code,
                error_message: String::new(),
                language_tag: "en".into(),
            })
        };
        let denied = sftp_failure(status(StatusCode::PermissionDenied), "cannot create", "a");
        assert!(!denied.retriable());
        assert!(denied.keeps_session());
        assert!(denied.to_string().contains("permissions"), "{denied}");
        assert!(sftp_failure(status(StatusCode::Failure), "cannot write", "a").retriable());
        let lost = sftp_failure(SftpError::IO("reset".into()), "cannot write", "a");
        assert!(lost.retriable());
        assert!(!lost.keeps_session());
    }
}
