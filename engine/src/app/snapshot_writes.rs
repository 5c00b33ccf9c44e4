//! Write-behind for snapshot chunks: a closed chunk's record is written to `snapshot.data` on
//! a writer thread while the core goes on reading and encoding the next rows.
//!
//! Why: writing a chunk into the page cache is the most expensive step of a large snapshot
//! after the encoding was made cheap (`docs/benchmarks/storage.md`: on this project's VM every
//! fresh page-cache page costs a hypervisor fault, about 28 ms per 10 MiB chunk), and done on
//! the core it stalled the COPY stream, the encoder and every request of the core meanwhile.
//!
//! At most one write is in flight per snapshot: when the next chunk closes the core waits for
//! the previous write (usually finished by then) before handing over the new one, so memory
//! holds at most the open chunk, the chunk being written and its record. A chunk is served from
//! memory until its write is done, then from the file. A failed write fails the snapshot (the
//! shape is dropped; its clients start again), as a failed synchronous write at the snapshot's
//! end already did.

use crate::shapes::shape::Shape;
use crate::storage::{PendingWrite, StorageError};
use std::cell::RefCell;

type Done = Result<(u64, Vec<u8>), StorageError>;
type Request = (PendingWrite, flume::Sender<Done>);

/// The writer thread of one core: runs writes in the order they are sent.
#[derive(Clone)]
pub struct Writer(flume::Sender<Request>);

impl Writer {
    pub fn start(core: usize) -> std::io::Result<Self> {
        let (tx, rx) = flume::unbounded::<Request>();
        std::thread::Builder::new()
            .name(format!("ampere-snapshot-{core}"))
            .spawn(move || {
                while let Ok((write, done)) = rx.recv() {
                    // The snapshot may have failed meanwhile; nobody waits then.
                    let _ = done.send(write.run());
                }
            })?;
        Ok(Self(tx))
    }
}

/// The writes of one snapshot.
pub struct SnapshotWrites {
    /// `None`: no writer thread could be started; writes run on the core.
    writer: Option<Writer>,
    done_tx: flume::Sender<Done>,
    done_rx: flume::Receiver<Done>,
    in_flight: usize,
}

impl SnapshotWrites {
    pub fn new(writer: Option<Writer>) -> Self {
        let (done_tx, done_rx) = flume::unbounded();
        Self {
            writer,
            done_tx,
            done_rx,
            in_flight: 0,
        }
    }

    /// A chunk was appended to the shape's store: waits for the previous write (blocking this
    /// thread, as the synchronous write did, but normally it is done), then hands over the
    /// new one. The previous write's buffer goes back to the store for the next chunk, so a
    /// snapshot cycles through two record buffers instead of allocating one per chunk.
    pub fn chunk_closed(&mut self, shape: &mut Shape) -> Result<(), StorageError> {
        let mut spare = None;
        while self.in_flight > 0 {
            let done = self.done_rx.recv().expect("this struct holds a sender");
            spare = Some(self.completed(shape, done)?);
        }
        let write = shape.take_snapshot_write()?;
        if let Some(buf) = spare {
            shape.recycle_snapshot_buffer(buf);
        }
        let Some(write) = write else {
            return Ok(());
        };
        let write = match &self.writer {
            Some(Writer(tx)) => match tx.send((write, self.done_tx.clone())) {
                Ok(()) => {
                    self.in_flight += 1;
                    return Ok(());
                }
                // The writer thread is gone (it cannot panic without aborting the process):
                // write here.
                Err(flume::SendError((write, _))) => write,
            },
            None => write,
        };
        let (end, buf) = write.run()?;
        shape.snapshot_written(end);
        shape.recycle_snapshot_buffer(buf);
        Ok(())
    }

    /// Waits, without blocking the core, until every write handed over is done.
    pub async fn finish(&mut self, shape: &RefCell<Shape>) -> Result<(), StorageError> {
        while self.in_flight > 0 {
            let done = self
                .done_rx
                .recv_async()
                .await
                .expect("this struct holds a sender");
            let mut s = shape.borrow_mut();
            let buf = self.completed(&mut s, done)?;
            // For the last chunk, appended when the snapshot ends.
            s.recycle_snapshot_buffer(buf);
        }
        Ok(())
    }

    /// Records a finished write; returns its emptied buffer.
    fn completed(&mut self, shape: &mut Shape, done: Done) -> Result<Vec<u8>, StorageError> {
        self.in_flight -= 1;
        let (end, buf) = done?;
        shape.snapshot_written(end);
        Ok(buf)
    }
}

/// The rows of one shape's snapshot as they arrive: appended to its log, each closed chunk
/// handed to the writer and the shape queued for the next sync (once per chunk, not per row).
/// A storage error keeps the rest from being appended and fails the snapshot at
/// [`SnapshotRows::finish`].
pub struct SnapshotRows {
    core: std::rc::Rc<super::core::Core>,
    shape: super::core::ShapeRef,
    writes: SnapshotWrites,
    error: Option<StorageError>,
}

impl SnapshotRows {
    pub fn new(core: &std::rc::Rc<super::core::Core>, shape: &super::core::ShapeRef) -> Self {
        Self {
            core: core.clone(),
            shape: shape.clone(),
            writes: SnapshotWrites::new(core.snapshot_writer()),
            error: None,
        }
    }

    pub fn push(&mut self, json: &[u8]) {
        if self.error.is_some() {
            return;
        }
        {
            let mut s = self.shape.borrow_mut();
            match s.push_snapshot_row(json) {
                Ok(false) => return,
                Ok(true) => {
                    if let Err(e) = self.writes.chunk_closed(&mut s) {
                        self.error = Some(e);
                    }
                }
                Err(e) => self.error = Some(e),
            }
        }
        self.core.mark_dirty(&self.shape);
    }

    /// Waits until every chunk is in the file (before the snapshot's end is recorded).
    pub async fn finish(mut self) -> Result<(), crate::shapes::snapshot::SnapshotError> {
        if let Err(e) = self.writes.finish(&self.shape).await {
            self.error.get_or_insert(e);
        }
        match self.error {
            None => Ok(()),
            Some(e) => Err(crate::shapes::snapshot::SnapshotError::Protocol(format!(
                "cannot store the snapshot: {e}"
            ))),
        }
    }
}
