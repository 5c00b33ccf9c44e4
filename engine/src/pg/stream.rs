//! The logical replication stream: a reader task, a status-writer task and the consumer handle.
//!
//! The socket is split. The reader task frames CopyData, forwards XLogData to the consumer over a
//! bounded channel and asks for an immediate status update when a keepalive requests one. The
//! writer task sends standby status updates on a timer and on request. Because the writer never
//! waits for the consumer or the reader, the server keeps receiving replies (and so does not hit
//! `wal_sender_timeout`) even while the consumer is busy and the channel is full.
//!
//! The flush and apply positions reported are exactly what the consumer set with
//! [`ReplicationStream::set_flush_lsn`]: the server advances the slot's `confirmed_flush_lsn` to
//! the reported flush position, so reporting more than is durable would lose data on a crash.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};

use pgwire::frame::{BackendMessage, Frame};
use pgwire::replication::{
    encode_standby_status, parse_copy_data, ReplicationMessage, STANDBY_STATUS_FRAME_LEN,
};
use pgwire::types::Lsn;

use super::connection::{log_notice, Connection};
use super::error::PgError;
use super::io::{read_frame, write_buf};

/// Tuning of a [`ReplicationStream`].
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// How often a standby status update is sent when nothing else triggers one. Must be well
    /// below the server's `wal_sender_timeout` (60 s by default).
    pub status_interval: Duration,
    /// XLogData messages buffered between the reader task and the consumer.
    pub channel_capacity: usize,
    /// A connection that brings no message for this long is declared dead (the stream ends
    /// with [`PgError::Timeout`]). Each periodic status update asks the server for a reply, so
    /// a healthy idle server answers at least every `status_interval`; the interval is
    /// shortened to a third of this bound when it is longer.
    pub silence_timeout: Duration,
    /// Also hand the consumer each primary keepalive, in stream order, as an [`XLogData`] with
    /// empty `data` and `wal_start == wal_end` == the server's sent position: everything
    /// before it has been handed over already.
    pub forward_keepalives: bool,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            status_interval: Duration::from_secs(10),
            channel_capacity: 256,
            silence_timeout: Duration::from_secs(30),
            forward_keepalives: false,
        }
    }
}

/// One XLogData message: for a logical slot, one pgoutput message in `data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XLogData {
    pub wal_start: Lsn,
    pub wal_end: Lsn,
    pub data: Bytes,
}

/// Positions shared between the consumer handle and the two tasks (all on one thread).
struct Progress {
    /// The highest position received from the server: reported as the write position.
    received: Cell<Lsn>,
    /// The consumer's durable position: reported as flush and apply positions.
    flushed: Cell<Lsn>,
    /// A failure of the writer task, surfaced by the next `next()`.
    writer_error: RefCell<Option<PgError>>,
    /// The next status update asks the server for a reply (a keepalive with its position).
    reply_wanted: Cell<bool>,
}

impl Progress {
    fn note_received(&self, lsn: Lsn) {
        if lsn > self.received.get() {
            self.received.set(lsn);
        }
    }
}

/// Consumer handle of a running replication stream. Dropping it stops both tasks and closes the
/// connection.
pub struct ReplicationStream {
    messages: flume::Receiver<Result<XLogData, PgError>>,
    progress: Rc<Progress>,
    wake_writer: flume::Sender<()>,
    /// Never sent on: dropping it disconnects the tasks' receivers, which tells them to stop.
    _stop: flume::Sender<()>,
    finished: bool,
}

impl ReplicationStream {
    /// Takes over a connection that just received CopyBothResponse.
    pub(super) fn start(conn: Connection, start: Lsn, settings: StreamSettings) -> Self {
        assert!(
            settings.channel_capacity > 0,
            "channel capacity must be positive"
        );
        assert!(
            !settings.status_interval.is_zero(),
            "status interval must be positive"
        );
        let (stream, read_buf, max_message_len) = conn.into_parts();
        let (reader, writer) = stream.into_split();
        let (message_tx, messages) = flume::bounded(settings.channel_capacity);
        // Capacity 1: requests that arrive while one is pending collapse into it.
        let (wake_writer, wake_rx) = flume::bounded(1);
        let (stop, stop_rx) = flume::bounded::<()>(1);
        let progress = Rc::new(Progress {
            received: Cell::new(start),
            flushed: Cell::new(Lsn::INVALID),
            writer_error: RefCell::new(None),
            reply_wanted: Cell::new(false),
        });
        let task = ReaderTask {
            progress: progress.clone(),
            messages: message_tx,
            wake_writer: wake_writer.clone(),
            max_message_len,
            silence_timeout: settings.silence_timeout,
            forward_keepalives: settings.forward_keepalives,
        };
        monoio::spawn(task.run(reader, read_buf, stop_rx.clone()));
        let interval = settings
            .status_interval
            .min(settings.silence_timeout / 3)
            .max(Duration::from_millis(10));
        monoio::spawn(run_writer(
            writer,
            progress.clone(),
            wake_rx,
            stop_rx,
            interval,
        ));
        Self {
            messages,
            progress,
            wake_writer,
            _stop: stop,
            finished: false,
        }
    }

    /// The next XLogData message. A server error, the end of the stream or a broken connection
    /// is returned once as an error; after that every call returns [`PgError::Closed`].
    pub async fn next(&mut self) -> Result<XLogData, PgError> {
        if self.finished {
            return Err(PgError::Closed);
        }
        if let Some(e) = self.progress.writer_error.borrow_mut().take() {
            self.finished = true;
            return Err(e);
        }
        match self.messages.recv_async().await {
            Ok(Ok(data)) => Ok(data),
            Ok(Err(e)) => {
                self.finished = true;
                Err(e)
            }
            Err(_) => {
                self.finished = true;
                Err(self
                    .progress
                    .writer_error
                    .borrow_mut()
                    .take()
                    .unwrap_or(PgError::Closed))
            }
        }
    }

    /// Declares everything up to `lsn` durable. Only this position is ever reported to the
    /// server as flushed and applied; it never moves backwards.
    pub fn set_flush_lsn(&self, lsn: Lsn) {
        if lsn > self.progress.flushed.get() {
            self.progress.flushed.set(lsn);
        }
    }

    /// The flush position that will be (or was) reported.
    pub fn flush_lsn(&self) -> Lsn {
        self.progress.flushed.get()
    }

    /// The highest WAL position received from the server so far.
    pub fn received_lsn(&self) -> Lsn {
        self.progress.received.get()
    }

    /// Sends a status update now instead of waiting for the next interval.
    pub fn request_status_update(&self) {
        // A full channel means an update is already pending, which is just as good.
        let _ = self.wake_writer.try_send(());
    }

    /// Sends a status update that asks the server for a reply: a keepalive with the position
    /// it has sent up to (handed over when `forward_keepalives` is set).
    pub fn request_reply(&self) {
        self.progress.reply_wanted.set(true);
        let _ = self.wake_writer.try_send(());
    }
}

struct ReaderTask {
    progress: Rc<Progress>,
    messages: flume::Sender<Result<XLogData, PgError>>,
    wake_writer: flume::Sender<()>,
    max_message_len: usize,
    silence_timeout: Duration,
    forward_keepalives: bool,
}

impl ReaderTask {
    async fn run<R: super::transport::ReadBytes>(
        self,
        mut reader: R,
        mut buf: BytesMut,
        stop: flume::Receiver<()>,
    ) {
        loop {
            let frame = monoio::select! {
                biased;
                _ = stop.recv_async() => return,
                frame = read_frame(
                    &mut reader,
                    &mut buf,
                    self.max_message_len,
                    Some(self.silence_timeout),
                ) => frame,
            };
            let outcome = frame.and_then(|frame| self.handle(frame));
            let failed = outcome.is_err();
            let item = match outcome {
                Ok(None) => continue,
                Ok(Some(data)) => Ok(data),
                Err(e) => Err(e),
            };
            // Blocks while the consumer is behind; the writer task keeps the server satisfied.
            // An error means the consumer is gone, and so is our reason to run.
            if self.messages.send_async(item).await.is_err() || failed {
                return;
            }
        }
    }

    fn handle(&self, frame: Frame) -> Result<Option<XLogData>, PgError> {
        match BackendMessage::parse(frame)? {
            BackendMessage::CopyData(body) => match parse_copy_data(body)? {
                ReplicationMessage::XLogData {
                    wal_start,
                    wal_end,
                    data,
                    ..
                } => {
                    self.progress.note_received(wal_start);
                    Ok(Some(XLogData {
                        wal_start,
                        wal_end,
                        data,
                    }))
                }
                ReplicationMessage::PrimaryKeepalive {
                    wal_end,
                    reply_requested,
                    ..
                } => {
                    self.progress.note_received(wal_end);
                    if reply_requested {
                        let _ = self.wake_writer.try_send(());
                    }
                    Ok(self.forward_keepalives.then(|| XLogData {
                        wal_start: wal_end,
                        wal_end,
                        data: Bytes::new(),
                    }))
                }
            },
            BackendMessage::NoticeResponse(notice) => {
                log_notice(&notice);
                Ok(None)
            }
            BackendMessage::ParameterStatus { .. } => Ok(None),
            BackendMessage::ErrorResponse(fields) => Err(PgError::Db(fields)),
            // The orderly end of the stream: CopyDone, then CommandComplete (Postgres sends both
            // when its WAL sender stops, e.g. at a fast shutdown); either one ends it.
            BackendMessage::CopyDone | BackendMessage::CommandComplete(_) => {
                Err(PgError::StreamEnded)
            }
            other => Err(PgError::Protocol(format!(
                "unexpected message in replication stream: {other:?}"
            ))),
        }
    }
}

/// Sends a standby status update every `interval` and whenever woken.
async fn run_writer<W: super::transport::WriteBytes>(
    mut writer: W,
    progress: Rc<Progress>,
    wake: flume::Receiver<()>,
    stop: flume::Receiver<()>,
    interval: Duration,
) {
    let mut buf = BytesMut::with_capacity(STANDBY_STATUS_FRAME_LEN);
    // Periodic updates keep their own schedule: updates the consumer asks for in between do
    // not postpone them.
    let mut next_periodic = std::time::Instant::now() + interval;
    loop {
        // A periodic update asks for a reply: the server's answer shows the connection alive
        // (the reader's silence bound).
        let wait = next_periodic.saturating_duration_since(std::time::Instant::now());
        let periodic = monoio::select! {
            biased;
            _ = stop.recv_async() => return,
            woken = wake.recv_async() => if woken.is_err() { return } else { false },
            _ = monoio::time::sleep(wait) => true,
        };
        if periodic {
            next_periodic = std::time::Instant::now() + interval;
        }
        let flushed = progress.flushed.get();
        let written = progress.received.get().max(flushed);
        let now = now_micros_since_2000();
        let reply = periodic || progress.reply_wanted.take();
        encode_standby_status(&mut buf, written, flushed, flushed, now, reply);
        if let Err(e) = write_buf(&mut writer, &mut buf).await {
            tracing::warn!("failed to send standby status update: {e}");
            *progress.writer_error.borrow_mut() = Some(e);
            return;
        }
    }
}

/// The current time in the replication protocol's unit: microseconds since 2000-01-01 UTC.
pub fn now_micros_since_2000() -> i64 {
    const POSTGRES_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
    let unix_micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    unix_micros.saturating_sub(POSTGRES_EPOCH_UNIX_MICROS)
}
