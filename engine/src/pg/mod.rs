//! Postgres client on monoio: queries, COPY OUT and logical replication.
