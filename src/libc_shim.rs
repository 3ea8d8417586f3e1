//! Debian's (2022) wasi-libc lacks `realpath`, which Rust 1.96's `std` references from
//! `fs::canonicalize`. The component never canonicalises paths, so a definition that fails is
//! enough to link; with a complete wasi-libc (rustup's target) this one simply wins the link.

use std::ffi::c_char;

#[no_mangle]
pub extern "C" fn realpath(_path: *const c_char, _resolved: *mut c_char) -> *mut c_char {
    std::ptr::null_mut()
}
