//! Initial sync of one user's 1,000 docs: the subquery shape against a shape selecting the very
//! same rows with a literal list (`id IN (1, 2, …)`). Each repetition syncs each shape from
//! `offset=-1` to up-to-date (every chunk read) and then deletes it (`DELETE /v1/shape`), so
//! every sync creates its shape anew — for the subquery shape, its dependency view too (the
//! view goes with its last shape). The order of the two alternates between repetitions.
//! Before the delete, the same catch-up is timed once more: the shape then exists, so that
//! time is the request's own cost (definition, serving) without the shape's creation.

use std::time::Duration;

use anyhow::{ensure, Result};

use super::super::http::HttpClient;
use super::super::shape_fetch::fetch_definition;
use super::{encode, user_definition, SubqueryOptions};

#[derive(Debug, Default)]
pub struct SyncSamples {
    pub rows: u64,
    pub body_bytes: u64,
    /// One per repetition, ascending (the median is the lower middle one).
    pub elapsed: Vec<Duration>,
    /// The same catch-up again while the shape exists (its log served, no snapshot), ascending.
    pub reread: Vec<Duration>,
}

impl SyncSamples {
    pub fn median(&self) -> Duration {
        median(&self.elapsed)
    }

    pub fn reread_median(&self) -> Duration {
        median(&self.reread)
    }
}

/// The lower middle of ascending `sorted`.
fn median(sorted: &[Duration]) -> Duration {
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

#[derive(Debug, Default)]
pub struct SyncComparison {
    pub subquery: SyncSamples,
    pub list: SyncSamples,
}

pub fn measure(port: u16, options: &SubqueryOptions) -> Result<SyncComparison> {
    let ids: Vec<String> = (1..=options.sync_docs).map(|d| d.to_string()).collect();
    let list_def = format!(
        "table=docs&where={}",
        encode(&format!("id IN ({})", ids.join(",")))
    );
    let sub_def = user_definition(options.sync_user());
    let mut client = HttpClient::connect(port)?;
    let mut result = SyncComparison::default();
    for rep in 0..options.repetitions.max(1) {
        let mut order = [
            (&sub_def, &mut result.subquery),
            (&list_def, &mut result.list),
        ];
        if rep % 2 == 1 {
            order.reverse();
        }
        for (def, samples) in order {
            let fetch = fetch_definition(&mut client, def, false)?;
            ensure!(
                fetch.rows == options.sync_docs,
                "initial sync returned {} rows, expected {}",
                fetch.rows,
                options.sync_docs
            );
            samples.rows = fetch.rows;
            samples.body_bytes = fetch.body_bytes;
            samples.elapsed.push(fetch.elapsed);
            // Separates creating the shape (view, snapshot) from handling the request itself.
            samples
                .reread
                .push(fetch_definition(&mut client, def, false)?.elapsed);
            let deleted =
                client.request("DELETE", &format!("/v1/shape?handle={}", fetch.handle))?;
            ensure!(
                deleted.status == 202,
                "DELETE of the shape: status {} ({})",
                deleted.status,
                deleted.body_str()
            );
        }
    }
    for samples in [&mut result.subquery, &mut result.list] {
        samples.elapsed.sort_unstable();
        samples.reread.sort_unstable();
    }
    Ok(result)
}
