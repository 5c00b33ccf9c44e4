//! The sizes the suite runs at: the full grids, the quick grids (a couple of minutes), and the
//! smallest grid (one point per scenario, for the smoke test).

/// Which grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Smallest,
    Quick,
    Full,
}

impl Size {
    pub fn label(self) -> &'static str {
        match self {
            Self::Smallest => "smallest",
            Self::Quick => "quick",
            Self::Full => "full",
        }
    }
}

/// Every size the suite uses, resolved from a [`Size`].
#[derive(Clone, Debug)]
pub struct Plan {
    pub size: Size,
    /// `write-fanout` client counts.
    pub fanout_clients: Vec<u64>,
    /// `unrelated-shapes-latency` shape counts.
    pub unrelated_shapes: Vec<u64>,
    /// `many-shapes-one-client` shape counts.
    pub many_shapes: Vec<u64>,
    /// `concurrent-shape-creation` shape counts.
    pub creation_shapes: Vec<u64>,
    /// Seconds of writes per latency run (50-row writes at 1/s, as Electric's fleet).
    pub write_secs: u64,
    /// Rows for the decode and drain workloads.
    pub replication_rows: u64,
    pub replication_batch_rows: u64,
    pub repetitions: usize,
    pub catchup_rows: u64,
    pub wrk_secs: u64,
    pub wrk_connections: usize,
    pub held_connections: u64,
    pub initial_sync_rows: u64,
    pub route_sizes: Vec<u64>,
}

impl Plan {
    pub fn new(size: Size) -> Self {
        match size {
            Size::Smallest => Self {
                size,
                fanout_clients: vec![10],
                unrelated_shapes: vec![100],
                many_shapes: vec![100],
                creation_shapes: vec![50],
                write_secs: 2,
                replication_rows: 1_000,
                replication_batch_rows: 500,
                repetitions: 1,
                catchup_rows: 2_000,
                wrk_secs: 1,
                wrk_connections: 4,
                held_connections: 50,
                initial_sync_rows: 2_000,
                route_sizes: vec![100],
            },
            Size::Quick => Self {
                size,
                fanout_clients: vec![10, 100],
                unrelated_shapes: vec![100, 1_000],
                many_shapes: vec![100, 300],
                // 3,650: Electric's largest S1 point, one row per shape (≈ 2 s).
                creation_shapes: vec![50, 450, 3_650],
                write_secs: 3,
                replication_rows: 20_000,
                replication_batch_rows: 5_000,
                repetitions: 1,
                catchup_rows: 3_000,
                wrk_secs: 1,
                wrk_connections: 8,
                held_connections: 200,
                initial_sync_rows: 20_000,
                route_sizes: vec![100, 1_000],
            },
            Size::Full => Self {
                size,
                fanout_clients: vec![10, 100, 1_000],
                unrelated_shapes: vec![100, 1_000, 10_000],
                many_shapes: vec![100, 500, 1_500],
                // Electric's S1 grid (v1.1 blog): 3,650 creations in 8.1 s on 2 vCPU.
                creation_shapes: vec![50, 450, 1_450, 3_650],
                write_secs: 10,
                replication_rows: 1_000_000,
                replication_batch_rows: 100_000,
                repetitions: 3,
                catchup_rows: 200_000,
                wrk_secs: 10,
                wrk_connections: 64,
                held_connections: 10_000,
                initial_sync_rows: 1_000_000,
                route_sizes: vec![100, 1_000, 10_000, 100_000],
            },
        }
    }
}
