//! A connection's socket with a write deadline: a write or flush that makes
//! no progress for the stall time (the client asked and stopped reading)
//! fails with `TimedOut`, and the connection closes, so a client that never
//! reads cannot keep a response, and its slot, for ever. Reads that bring
//! bytes mark the connection's progress (the cap closes the silent first).

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Sleep,
};

use super::conn_cap::Progress;

/// `T` whose writes time out after `stall` without progress.
pub struct StallGuard<T> {
    inner: T,
    stall: Duration,
    waiting: Option<Pin<Box<Sleep>>>,
    heard: Option<Progress>,
}

impl<T> StallGuard<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, stall: Duration) -> Self {
        StallGuard {
            inner,
            stall,
            waiting: None,
            heard: None,
        }
    }

    /// Marks `progress` whenever a read brings bytes.
    pub fn marking(mut self, progress: Progress) -> Self {
        self.heard = Some(progress);
        self
    }

    /// A pending write: Ready(TimedOut) once it has waited `stall`.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let stall = self.stall;
        let sleep = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {stall:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<R>(
        &mut self,
        r: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(r) => {
                self.waiting = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.pending(cx),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && let Some(p) = &self.heard
        {
            p.heard();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progressed(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progressed(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.progressed(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_times_out_and_one_that_is_read_does_not() {
        // A pipe whose reader never reads: writes block once it is full.
        let (mut ours, theirs) = tokio::io::duplex(1024);
        let mut w = StallGuard::new(&mut ours, Duration::from_secs(30));
        let err = w.write_all(&[0u8; 4096]).await.expect_err("never read");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(theirs);

        // Read as it is written: no timeout, however long the whole takes.
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut n = 0;
            let mut buf = [0u8; 512];
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                match tokio::io::AsyncReadExt::read(&mut theirs, &mut buf).await {
                    Ok(0) | Err(_) => return n,
                    Ok(k) => n += k,
                }
            }
        });
        let mut w = StallGuard::new(&mut ours, Duration::from_secs(30));
        w.write_all(&[0u8; 8192]).await.expect("read in time");
        drop(w);
        drop(ours);
        assert_eq!(reader.await.expect("reader"), 8192);
    }
}
