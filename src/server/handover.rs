//! Binary upgrade without a lost connection, as pingora and Envoy do it: the running
//! banyan serves a Unix socket; `banyan run --upgrade` connects to it and receives the
//! listening sockets themselves (SCM_RIGHTS), starts accepting on them, and says it is
//! ready; the old process then stops accepting, drains and exits. The kernel's accept
//! queue is shared by both processes all along, so no connection attempt is refused.
//!
//! The exchange, one line each way around the sockets:
//! new -> old `banyan-upgrade 1\n`; old -> new `proxy,admin[,tls]\n` + the sockets;
//! new -> old `ready\n`.

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

use super::listeners::Inherited;

const HELLO: &str = "banyan-upgrade 1\n";
const READY: &str = "ready\n";
/// More than banyan ever has (proxy, admin, tls).
const MAX_SOCKETS: usize = 8;

/// Errors of either side of a handover.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("cannot reach the running banyan at {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the handover failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the running banyan sent no sockets")]
    NoSockets,
    #[error("cannot serve upgrades at {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The running side: hands its sockets to each upgrade that asks, and is told (by
/// `retire`) when one has taken over.
pub struct Offer {
    path: PathBuf,
    pub retire: Arc<Notify>,
}

impl Offer {
    /// Serve `sockets` (role name, duplicate of the listening socket) at `path`, on a
    /// thread of its own.
    pub fn serve(
        path: &Path,
        sockets: Vec<(&'static str, OwnedFd)>,
    ) -> Result<Offer, HandoverError> {
        let bind_error = |source| HandoverError::Bind {
            path: path.to_path_buf(),
            source,
        };
        // A socket file left by a process that exited (or by the one that upgraded to
        // us, which no longer listens on it): ours now.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(bind_error(e)),
        }
        let listener = UnixListener::bind(path).map_err(bind_error)?;
        {
            use std::os::unix::fs::PermissionsExt;
            // Only banyan's own user may take its sockets.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(bind_error)?;
        }
        let retire = Arc::new(Notify::new());
        let notify = retire.clone();
        let shown = path.display().to_string();
        std::thread::Builder::new()
            .name("banyan-handover".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    match hand_over(stream, &sockets) {
                        Ok(()) => {
                            tracing::info!("the upgraded banyan is serving; this one retires");
                            notify.notify_one();
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "upgrade abandoned; still serving"),
                    }
                }
            })
            .map_err(bind_error)?;
        tracing::info!(socket = %shown, "upgrades are taken at this socket");
        Ok(Offer {
            path: path.to_path_buf(),
            retire,
        })
    }

    /// On an ordinary exit the socket goes too, so no one waits on a dead one.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn hand_over(stream: UnixStream, sockets: &[(&'static str, OwnedFd)]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line != HELLO {
        return Err(std::io::Error::other(format!(
            "unexpected greeting {line:?}"
        )));
    }
    let names: Vec<&str> = sockets.iter().map(|(n, _)| *n).collect();
    let payload = format!("{}\n", names.join(","));
    let fds: Vec<_> = sockets.iter().map(|(_, fd)| fd.as_fd()).collect();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    sendmsg(
        &stream,
        &[IoSlice::new(payload.as_bytes())],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(std::io::Error::from)?;
    // The new process starts accepting, then says so; until then we keep serving.
    line.clear();
    reader.read_line(&mut line)?;
    if line != READY {
        return Err(std::io::Error::other(
            "the new process did not become ready",
        ));
    }
    Ok(())
}

/// The upgrading side: the sockets received, and the line back to the old process.
pub struct Takeover {
    inherited: Inherited,
    stream: UnixStream,
}

impl Takeover {
    /// Ask the banyan serving `path` for its sockets.
    pub fn request(path: &Path) -> Result<Takeover, HandoverError> {
        let mut stream = UnixStream::connect(path).map_err(|source| HandoverError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        stream.write_all(HELLO.as_bytes())?;
        let mut data = [0u8; 256];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = recvmsg(
            &stream,
            &mut [IoSliceMut::new(&mut data)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        let mut fds: Vec<OwnedFd> = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = message {
                fds.extend(rights);
            }
        }
        if fds.is_empty() {
            return Err(HandoverError::NoSockets);
        }
        let text = String::from_utf8_lossy(&data[..received.bytes]);
        let names = text.trim_end().split(',').map(|n| Some(n.to_string()));
        let sockets = names
            .zip(fds)
            .map(|(name, fd)| (name, std::net::TcpListener::from(fd)))
            .collect();
        Ok(Takeover {
            inherited: Inherited::new(sockets),
            stream,
        })
    }

    /// The sockets, for the listeners to take.
    pub fn take_sockets(&mut self) -> Inherited {
        std::mem::take(&mut self.inherited)
    }

    /// Tell the old process we accept connections: it stops, drains and exits.
    pub fn ready(mut self) -> Result<(), HandoverError> {
        self.stream.write_all(READY.as_bytes())?;
        Ok(())
    }
}
