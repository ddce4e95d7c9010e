//! Where a tar stream goes: its headers through a buffer, and the content
//! of big files moved by the kernel from the evidence file to the output
//! (`splice` into a pipe, `sendfile` into a file) instead of being read
//! into memory and written out again.

use std::io::{BufWriter, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// Bytes of the output buffer (headers and small files).
const BUFFER: usize = 1 << 20;

/// Bytes moved by one `splice` or `sendfile`.
const MOVE_CHUNK: usize = 1 << 30;

/// An export's output.
pub trait Sink: Write {
    /// Flushes what is buffered and lends the output file contents may be
    /// moved into; `None`: they are read and written.
    fn direct(&mut self) -> std::io::Result<Option<Direct<'_>>> {
        Ok(None)
    }
}

impl Sink for Vec<u8> {}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn direct(&mut self) -> std::io::Result<Option<Direct<'_>>> {
        (**self).direct()
    }
}

/// A buffered output to a descriptor: standard output or a file.
#[derive(Debug)]
pub struct FdSink<W: Write + AsFd> {
    out: BufWriter<W>,
    pipe: bool,
}

impl<W: Write + AsFd> FdSink<W> {
    /// A pipe gets a 1 MiB buffer (best effort): with the default 64 KiB,
    /// each 1 MiB of the stream waits on the reader sixteen times.
    pub fn new(out: W) -> FdSink<W> {
        let pipe = is_pipe(out.as_fd());
        if pipe {
            // SAFETY: F_SETPIPE_SZ on our own output; a refusal changes nothing.
            unsafe { libc::fcntl(out.as_fd().as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
        }
        FdSink {
            out: BufWriter::with_capacity(BUFFER, out),
            pipe,
        }
    }
}

impl<W: Write + AsFd> Write for FdSink<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write + AsFd> Sink for FdSink<W> {
    fn direct(&mut self) -> std::io::Result<Option<Direct<'_>>> {
        self.out.flush()?;
        Ok(Some(Direct {
            fd: self.out.get_ref().as_fd(),
            pipe: self.pipe,
        }))
    }
}

fn is_pipe(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: zeroed stat is a valid buffer for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and buffer.
    unsafe {
        libc::fstat(fd.as_raw_fd(), &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFIFO
    }
}

/// An output that file contents are moved into: its descriptor, and
/// whether it is a pipe (`splice`) or not (`sendfile`), looked at once.
#[derive(Debug, Clone, Copy)]
pub struct Direct<'a> {
    fd: BorrowedFd<'a>,
    pipe: bool,
}

impl<'a> Direct<'a> {
    /// The output `fd`, whose kind is looked at now.
    pub fn new(fd: BorrowedFd<'a>) -> Direct<'a> {
        Direct {
            fd,
            pipe: is_pipe(fd),
        }
    }

    /// Moves up to `len` bytes of `file`, from its position (which
    /// advances), to this output inside the kernel. Returns the bytes
    /// moved: fewer than `len` at the end of the file, and 0 when this pair
    /// of files cannot (a terminal, a file opened to append): the caller
    /// then reads and writes. The read is the file's own (`O_NOATIME`
    /// holds for it like for `read`).
    pub fn move_from(&self, file: &std::fs::File, len: u64) -> std::io::Result<u64> {
        let mut moved = 0u64;
        while moved < len {
            let chunk = usize::try_from(len - moved).map_or(MOVE_CHUNK, |l| l.min(MOVE_CHUNK));
            let n = if self.pipe {
                // SAFETY: valid descriptors; null offsets use and advance the file positions.
                unsafe {
                    libc::splice(
                        file.as_raw_fd(),
                        std::ptr::null_mut(),
                        self.fd.as_raw_fd(),
                        std::ptr::null_mut(),
                        chunk,
                        libc::SPLICE_F_MORE,
                    )
                }
            } else {
                // SAFETY: valid descriptors; a null offset uses and advances the file position.
                unsafe {
                    libc::sendfile(
                        self.fd.as_raw_fd(),
                        file.as_raw_fd(),
                        std::ptr::null_mut(),
                        chunk,
                    )
                }
            };
            match u64::try_from(n) {
                Ok(0) => break,
                Ok(n) => moved += n,
                Err(_) => {
                    let e = std::io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EINTR) => continue,
                        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) if moved == 0 => break,
                        _ => return Err(e),
                    }
                }
            }
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn file_of(len: usize) -> (tempfile::TempDir, Vec<u8>, std::fs::File) {
        let t = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(t.path().join("f"), &data).unwrap();
        let file = std::fs::File::open(t.path().join("f")).unwrap();
        (t, data, file)
    }

    #[test]
    fn moves_into_a_pipe_and_a_file_from_the_position_on() {
        let (t, data, mut file) = file_of(3 << 20);
        // Into a file (sendfile), after 10 bytes read the usual way.
        let mut head = [0u8; 10];
        file.read_exact(&mut head).unwrap();
        let out = std::fs::File::create(t.path().join("out")).unwrap();
        let moved = Direct::new(out.as_fd()).move_from(&file, u64::MAX).unwrap();
        assert_eq!(moved as usize, data.len() - 10, "stops at the end");
        assert_eq!(std::fs::read(t.path().join("out")).unwrap(), data[10..]);
        // Into a pipe (splice), read on another thread.
        let (mut rx, tx) = std::io::pipe().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            rx.read_to_end(&mut got).unwrap();
            got
        });
        let (_t, data, file) = file_of(3 << 20);
        assert_eq!(
            Direct::new(tx.as_fd()).move_from(&file, 1 << 20).unwrap(),
            1 << 20
        );
        drop(tx);
        assert_eq!(reader.join().unwrap(), data[..1 << 20]);
    }

    #[test]
    fn an_output_that_cannot_take_moved_bytes_moves_none() {
        let (t, _, file) = file_of(1000);
        let out = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(t.path().join("log"))
            .unwrap();
        assert_eq!(Direct::new(out.as_fd()).move_from(&file, 1000).unwrap(), 0);
    }

    #[test]
    fn headers_written_before_a_move_come_first() {
        let t = tempfile::tempdir().unwrap();
        let (_t, data, file) = file_of(100_000);
        let mut sink = FdSink::new(std::fs::File::create(t.path().join("tar")).unwrap());
        sink.write_all(b"header").unwrap();
        let direct = sink.direct().unwrap().unwrap();
        assert_eq!(direct.move_from(&file, 100_000).unwrap(), 100_000);
        sink.write_all(b"pad").unwrap();
        sink.flush().unwrap();
        let written = std::fs::read(t.path().join("tar")).unwrap();
        assert_eq!(written, [b"header".as_slice(), &data, b"pad"].concat());
    }
}
