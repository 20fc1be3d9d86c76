//! Every raw pointer the C caller hands us is turned into a Rust reference here, and nowhere
//! else: the crate's only `unsafe` blocks (the tidy test
//! `unsafe_code_lives_only_in_the_listed_files`).
//!
//! The safety argument of each block is the contract written in `include/lars.h`: a handle is
//! NULL or a value returned by its `_new` function and not yet passed to its `_free`; an input
//! string is NULL or NUL-terminated; an output pointer is NULL or points to writable memory of
//! its type (an array of `capacity` items for `lars_get_route`). NULL is checked before any
//! use and reported as `LARS_INVALID_ARGUMENT`, so the one thing we cannot check is a dangling
//! or misaligned pointer, which C cannot express either.

use std::ffi::{CStr, c_char};

use crate::Error;

/// Moves `value` to the heap and gives its ownership to the C caller.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back a handle from [`into_handle`] and drops it; NULL is ignored, as `free(NULL)` is.
pub(crate) fn free_handle<T>(handle: *mut T) {
    if !handle.is_null() {
        // SAFETY: by the header's contract a non-NULL handle came from `into_handle` (a
        // `Box::into_raw` of the same `T`) and is freed once; after this call C must not use it.
        drop(unsafe { Box::from_raw(handle) });
    }
}

/// The value behind a handle, shared (the calls on a `lars_client` take `&Client`).
pub(crate) fn handle<'a, T>(handle: *const T, what: &str) -> Result<&'a T, Error> {
    // SAFETY: non-NULL means a live handle from `into_handle` (header contract); the reference
    // lives for one call, during which C must not free the handle.
    unsafe { handle.as_ref() }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// A NUL-terminated C string as UTF-8.
pub(crate) fn string<'a>(text: *const c_char, what: &str) -> Result<&'a str, Error> {
    if text.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated by the header's contract; read during this call only.
    let text = unsafe { CStr::from_ptr(text) };
    text.to_str().map_err(|_| Error::invalid(format!("{what} is not UTF-8")))
}

/// Writes `value` to the caller's `out`.
pub(crate) fn write<T>(out: *mut T, value: T, what: &str) -> Result<(), Error> {
    if out.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, writable and aligned for `T` by the header's contract. `write` does not
    // drop the old contents, which may be uninitialised; every `T` here is plain data.
    unsafe { out.write(value) };
    Ok(())
}

/// The caller's input record `input`, copied.
pub(crate) fn read<T: Copy>(input: *const T, what: &str) -> Result<T, Error> {
    if input.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, readable and aligned for `T` by the header's contract; `T` is plain
    // data (integers and a byte array), so any bit pattern is a valid value.
    Ok(unsafe { input.read() })
}

/// Copies `items` to the caller's array `out`, which holds `capacity` items (`out` may be NULL
/// when `capacity` is 0). The caller checks `items.len() <= capacity` first.
pub(crate) fn write_array<T: Copy>(
    out: *mut T,
    capacity: usize,
    items: &[T],
    what: &str,
) -> Result<(), Error> {
    if items.len() > capacity {
        return Err(Error::invalid(format!("{what} holds {capacity} items, {} needed", items.len())));
    }
    if items.is_empty() {
        return Ok(());
    }
    if out.is_null() {
        return Err(Error::invalid(format!("{what} is NULL but its capacity is {capacity}")));
    }
    // SAFETY: `out` points to `capacity >= items.len()` writable, aligned `T`s by the header's
    // contract, which cannot overlap our own `items`; the copy writes them whole and never
    // reads the (possibly uninitialised) old contents.
    unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), out, items.len()) };
    Ok(())
}

/// A string this library returned (`lars_last_error`, `lars_status_name`), for the tests.
#[cfg(test)]
pub(crate) fn returned_string(text: *const c_char) -> String {
    assert!(!text.is_null(), "the library returned NULL");
    // SAFETY: the library's strings are NUL-terminated and live until the thread's next failed
    // call (`lars_last_error`) or for ever (`lars_status_name`); copied at once.
    unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned()
}
