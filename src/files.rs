//! Model files, read through the preopened directories of the *running* host.
//!
//! Why not `std::fs`: wasi-libc resolves paths with a table of preopens that a libc constructor
//! fills during `_initialize` — which wizer runs at pre-initialisation, so the snapshot freezes
//! the pre-initialising host's mounts (fd 3 = `/models`). A host that mounts differently then
//! gets wrong answers: Spin's default file-mount strategy preopens one staging directory at `/`
//! (with `models/` inside), and `/models/x` resolved through the frozen table is
//! `<staging root>/x`, "No such file or directory". Newer wasi-libc has
//! `__wasilibc_reset_preopens` for this; Debian's (2022) wasi-libc, which builds the component
//! here, does not. So the guest asks the host for its preopens (`fd_prestat_get`, from fd 3
//! until `EBADF`, as wasi-libc does) on every read — a few host calls, only when a model is
//! loaded, never cached, so no table can be snapshotted — resolves the path with
//! [`pfd_core::mounts::resolve`] (wasi-libc's rule) and reads with `path_open`/`fd_read`.
//! Errors are WASI errnos turned into `io::Error`, so messages read as `std::fs`'s would
//! ("No such file or directory (os error 44)").

use std::io;

use wasi_preview1 as wasi;

/// Preopened directories of this instance: (descriptor, guest path).
fn preopens() -> Vec<(wasi::Fd, String)> {
    let mut found = Vec::new();
    for fd in 3.. {
        // SAFETY: plain WASI calls on descriptors the host owns; the name buffer is as long as
        // the host said.
        match unsafe { wasi::fd_prestat_get(fd) } {
            Ok(prestat) if prestat.tag == wasi::PREOPENTYPE_DIR.raw() => {
                let len = unsafe { prestat.u.dir.pr_name_len };
                let mut name = vec![0u8; len];
                if unsafe { wasi::fd_prestat_dir_name(fd, name.as_mut_ptr(), len) }.is_ok() {
                    // Some hosts count a terminating NUL in the length.
                    while name.last() == Some(&0) {
                        name.pop();
                    }
                    found.push((fd, String::from_utf8_lossy(&name).into_owned()));
                }
            }
            Err(wasi::ERRNO_BADF) => break,
            // Not a directory preopen (or not a preopen at all): wasi-libc skips these too.
            _ => {}
        }
    }
    found
}

fn errno(e: wasi::Errno) -> io::Error {
    io::Error::from_raw_os_error(i32::from(e.raw()))
}

/// An open file, closed on drop.
struct File(wasi::Fd);

impl Drop for File {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        let _ = unsafe { wasi::fd_close(self.0) };
    }
}

fn open(path: &str) -> io::Result<File> {
    open_with(path, 0, wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_FILESTAT_GET)
}

fn open_with(path: &str, oflags: wasi::Oflags, rights: wasi::Rights) -> io::Result<File> {
    let preopens = preopens();
    let names: Vec<&str> = preopens.iter().map(|(_, n)| n.as_str()).collect();
    let (index, relative) = pfd_core::mounts::resolve(&names, path)
        .ok_or_else(|| io::Error::from_raw_os_error(i32::from(wasi::ERRNO_NOENT.raw())))?;
    // SAFETY: a plain WASI call; the returned descriptor is owned by `File`.
    let fd = unsafe {
        wasi::path_open(
            preopens[index].0,
            wasi::LOOKUPFLAGS_SYMLINK_FOLLOW,
            relative,
            oflags,
            rights,
            0,
            0,
        )
    }
    .map_err(errno)?;
    Ok(File(fd))
}

impl File {
    fn size(&self) -> io::Result<u64> {
        // SAFETY: a plain WASI call on our descriptor.
        Ok(unsafe { wasi::fd_filestat_get(self.0) }
            .map_err(errno)?
            .size)
    }
}

/// The whole file at `path` (a guest path, e.g. `/models/bearing-lstm/model.onnx`).
pub fn read(path: &str) -> io::Result<Vec<u8>> {
    let file = open(path)?;
    let mut bytes: Vec<u8> = Vec::new();
    // The size is a hint only (a file may change while it is read): read until end of file.
    bytes.reserve_exact(usize::try_from(file.size().unwrap_or(0)).unwrap_or(0));
    loop {
        if bytes.capacity() - bytes.len() < 64 << 10 {
            bytes.reserve(64 << 10);
        }
        let spare = bytes.spare_capacity_mut();
        let iov = wasi::Iovec {
            buf: spare.as_mut_ptr().cast(),
            buf_len: spare.len(),
        };
        // SAFETY: the host writes at most `buf_len` bytes into the spare capacity and says how
        // many; only those become part of the vector.
        let n = unsafe { wasi::fd_read(file.0, &[iov]) }.map_err(errno)?;
        if n == 0 {
            return Ok(bytes);
        }
        unsafe { bytes.set_len(bytes.len() + n) };
    }
}

/// The size of the file at `path`, in bytes.
pub fn size(path: &str) -> io::Result<u64> {
    open(path)?.size()
}

/// The names of the entries of the directory `path` other than regular files (directories,
/// and links that may lead to one, as Kubernetes volumes mount them), without `.` and `..`, in
/// the host's order.
pub fn subdirectories(path: &str) -> io::Result<Vec<String>> {
    let dir = open_with(path, wasi::OFLAGS_DIRECTORY, wasi::RIGHTS_FD_READDIR)?;
    // A dirent is 24 bytes (next cookie u64, inode u64, name length u32, type u8, padding)
    // followed by the name; the host fills the buffer and truncates the last entry when it does
    // not fit, so entries are read up to the last whole one and the next call resumes there.
    const HEADER: usize = 24;
    let mut names = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    let mut cookie: wasi::Dircookie = 0;
    loop {
        // SAFETY: the host writes at most `buf.len()` bytes into `buf` and says how many.
        let filled = unsafe { wasi::fd_readdir(dir.0, buf.as_mut_ptr(), buf.len(), cookie) }
            .map_err(errno)?;
        let mut at = 0;
        let mut progressed = false;
        while at + HEADER <= filled {
            let field = |from: usize, len: usize| &buf[at + from..at + from + len];
            let next = u64::from_le_bytes(field(0, 8).try_into().expect("8 bytes"));
            let name_len = u32::from_le_bytes(field(16, 4).try_into().expect("4 bytes")) as usize;
            let kind = buf[at + 20];
            if at + HEADER + name_len > filled {
                break;
            }
            let name = String::from_utf8_lossy(field(HEADER, name_len)).into_owned();
            if kind != wasi::FILETYPE_REGULAR_FILE.raw() && name != "." && name != ".." {
                names.push(name);
            }
            cookie = next;
            progressed = true;
            at += HEADER + name_len;
        }
        if filled < buf.len() {
            return Ok(names);
        }
        if !progressed {
            // One entry larger than the buffer: grow it and read that entry again.
            buf.resize(buf.len() * 2, 0);
        }
    }
}
