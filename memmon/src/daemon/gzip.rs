//! Gzip for the endpoint's answers (the fast level: a scrape's body is
//! compressed on the thread that answers), and the size below which it is
//! not worth it.

/// Bodies at least this large are gzipped when the client accepts it.
pub const MIN_BYTES: usize = 1024;

/// `bytes` gzipped at the fast level (None, logged, if that failed).
pub fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    match gz.write_all(bytes).and_then(|()| gz.finish()) {
        Ok(zipped) => Some(zipped),
        Err(e) => {
            tracing::debug!("gzip: {e}");
            None
        }
    }
}
