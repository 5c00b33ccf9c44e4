//! The pgoutput logical decoding message format (protocol versions 1 and 2).
