//! Electric's published figures for the scenarios the suite runs, with their sources, so each
//! of our points can stand beside the published one at the same x. Values and sources are
//! those of `/work/shared/reference/performance-anchors.md` §0 and §1.2.

/// One published curve: y (ms) at each x of Electric's grid.
#[derive(Clone, Copy, Debug)]
pub struct Published {
    /// Electric version and hardware, shown beside the figure.
    pub label: &'static str,
    pub source: &'static str,
    pub points: &'static [(f64, f64)],
}

/// `write-fanout` (S4): mean write-seen time, 50-row transaction, one shape, N clients.
pub const WRITE_FANOUT: Published = Published {
    label: "Electric 1.1.0, t2.medium (2 vCPU) + EFS",
    source: "Electric v1.1 release blog, \"Reads fan-out\" (2025-08-13)",
    points: &[
        (5.0, 21.5),
        (100.0, 53.5),
        (200.0, 72.1),
        (300.0, 120.5),
        (400.0, 157.9),
        (500.0, 199.3),
        (600.0, 197.8),
        (700.0, 225.1),
        (800.0, 239.7),
        (900.0, 274.9),
        (1000.0, 334.6),
    ],
};

/// `unrelated-shapes-latency` (S3), `name = const`: mean write-seen time, flat up to 10k shapes.
pub const UNRELATED_SHAPES_EQ: Published = Published {
    label: "Electric 1.0.0-beta.1, 4 vCPU, separate machines",
    source: "electric-sql.com/docs/sync/reference/benchmarks (unrelated shapes, one client)",
    points: &[(100.0, 6.0), (300.0, 7.0), (1000.0, 6.0), (10000.0, 6.0)],
};

/// `many-shapes-one-client` (S6): time to see one 50-row write that hits all N shapes.
pub const MANY_SHAPES_ONE_CLIENT: Published = Published {
    label: "Electric 1.1.0, t2.medium (2 vCPU) + EFS",
    source: "Electric v1.1 release blog, \"Write throughput\" (2025-08-13)",
    points: &[
        (100.0, 56.0),
        (300.0, 127.0),
        (500.0, 203.0),
        (700.0, 311.0),
        (900.0, 402.0),
        (1100.0, 431.0),
        (1300.0, 603.0),
        (1500.0, 710.0),
    ],
};

/// `concurrent-shape-creation` (S1): mean time until each of N new shapes is up to date.
pub const CONCURRENT_SHAPE_CREATION: Published = Published {
    label: "Electric 1.1.0, t2.medium (2 vCPU) + EFS",
    source: "Electric v1.1 release blog, concurrent shape creation (2025-08-13)",
    points: &[
        (50.0, 188.0),
        (450.0, 1110.0),
        (850.0, 1956.0),
        (1250.0, 2863.0),
        (1650.0, 3767.0),
        (2050.0, 4585.0),
        (2450.0, 5587.0),
        (2850.0, 6413.0),
        (3250.0, 7084.0),
        (3650.0, 8110.0),
    ],
};

/// Electric's figure for one 1M-row initial sync (≈7.1 s, v0.9.4): rows per second.
pub const INITIAL_SYNC_ROWS_PER_SEC: f64 = 1_000_000.0 / 7.1;

/// How a published value was obtained for an x.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lookup {
    /// Electric published a figure at exactly this x.
    Exact(f64),
    /// Linear interpolation between the two neighbouring published points.
    Interpolated(f64),
    /// Outside the published range: no figure.
    None,
}

impl Lookup {
    pub fn value(self) -> Option<f64> {
        match self {
            Self::Exact(v) | Self::Interpolated(v) => Some(v),
            Self::None => None,
        }
    }

    /// The figure as a table cell (`≈` marks interpolation).
    pub fn cell(self) -> String {
        match self {
            Self::Exact(v) => format!("{v:.1}"),
            Self::Interpolated(v) => format!("≈{v:.1}"),
            Self::None => "—".into(),
        }
    }
}

impl Published {
    /// The published value at `x` (points are sorted by x).
    pub fn at(&self, x: f64) -> Lookup {
        for pair in self.points.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            if x == x0 {
                return Lookup::Exact(y0);
            }
            if x > x0 && x < x1 {
                return Lookup::Interpolated(y0 + (y1 - y0) * (x - x0) / (x1 - x0));
            }
        }
        match self.points.last() {
            Some(&(x_last, y_last)) if x == x_last => Lookup::Exact(y_last),
            _ => Lookup::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_exact_interpolated_and_outside() {
        assert_eq!(WRITE_FANOUT.at(5.0), Lookup::Exact(21.5));
        assert_eq!(WRITE_FANOUT.at(1000.0), Lookup::Exact(334.6));
        let Lookup::Interpolated(v) = WRITE_FANOUT.at(10.0) else {
            panic!("10 lies between 5 and 100");
        };
        assert!((v - (21.5 + 32.0 * 5.0 / 95.0)).abs() < 1e-9);
        assert_eq!(WRITE_FANOUT.at(2.0), Lookup::None);
        assert_eq!(WRITE_FANOUT.at(2000.0), Lookup::None);
        assert_eq!(UNRELATED_SHAPES_EQ.at(10000.0).cell(), "6.0");
    }

    #[test]
    fn curves_are_sorted_by_x() {
        for curve in [
            WRITE_FANOUT,
            UNRELATED_SHAPES_EQ,
            MANY_SHAPES_ONE_CLIENT,
            CONCURRENT_SHAPE_CREATION,
        ] {
            assert!(curve.points.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}
